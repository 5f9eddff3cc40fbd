//! Reads the rows of a MySQL/MariaDB SQL dump (`mysqldump`, phpMyAdmin,
//! Adminer): the statements one at a time from a stream, and of them only
//! `CREATE TABLE` (for the column order) and `INSERT INTO … VALUES`.
//! Nothing is executed; every other statement is passed over.

use std::io::BufRead;

/// A value of an `INSERT`'s row, as the dump wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    /// A number, as written (`42`, `-1.5`, `0x1F` as its decimal value).
    Number(String),
    Text(String),
}

impl Value {
    /// The value as text (`NULL` as `None`).
    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Null => None,
            Value::Number(n) => Some(n),
            Value::Text(t) => Some(t),
        }
    }
}

/// A statement the reader understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `CREATE TABLE name (columns…)`: the column names in order.
    Create { table: String, columns: Vec<String> },
    /// `INSERT [IGNORE] INTO name [(columns)] VALUES (…), (…)`.
    Insert {
        table: String,
        columns: Option<Vec<String>>,
        rows: Vec<Vec<Value>>,
    },
}

/// Why a dump could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("reading the dump: {0}")]
    Io(#[from] std::io::Error),
    #[error("statement {statement} of the dump: {message}")]
    Syntax { statement: u64, message: String },
}

/// The statements of a dump, one at a time: each is the text up to a `;`
/// outside quotes and comments. Statements are never longer than the
/// longest in the dump (mysqldump keeps them under a megabyte).
pub struct Statements<R> {
    reader: R,
    count: u64,
    done: bool,
}

impl<R: BufRead> Statements<R> {
    pub fn new(reader: R) -> Self {
        Statements {
            reader,
            count: 0,
            done: false,
        }
    }

    /// The next statement this reader understands (others are skipped);
    /// `None` at the end of the dump.
    pub fn next_statement(&mut self) -> Result<Option<Statement>, DumpError> {
        self.next_of(|_| true)
    }

    /// [`Self::next_statement`] of the tables `want` names only: the rows
    /// of others are not even parsed.
    pub fn next_of(&mut self, want: impl Fn(&str) -> bool) -> Result<Option<Statement>, DumpError> {
        while let Some(text) = self.next_text()? {
            self.count += 1;
            match parse(&text, &want) {
                Ok(Some(s)) => return Ok(Some(s)),
                Ok(None) => {}
                Err(message) => {
                    return Err(DumpError::Syntax {
                        statement: self.count,
                        message,
                    });
                }
            }
        }
        Ok(None)
    }

    /// The raw text of the next statement, comments left out.
    fn next_text(&mut self) -> Result<Option<String>, DumpError> {
        if self.done {
            return Ok(None);
        }
        let mut out: Vec<u8> = Vec::new();
        let mut state = Lex::Code;
        let mut prev = 0u8;
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                self.done = true;
                let text = String::from_utf8_lossy(&out).trim().to_owned();
                return Ok((!text.is_empty()).then_some(text));
            }
            let mut used = 0;
            let mut end = false;
            for &b in buf {
                used += 1;
                match state {
                    Lex::Code => match b {
                        b'\'' | b'"' | b'`' => {
                            state = Lex::Quoted(b);
                            out.push(b);
                        }
                        b'-' if prev == b'-' => {
                            // `-- ` starts a comment to the end of the line.
                            out.pop();
                            state = Lex::LineComment;
                        }
                        b'#' => state = Lex::LineComment,
                        b'*' if prev == b'/' => {
                            out.pop();
                            state = Lex::BlockComment;
                        }
                        b';' => {
                            end = true;
                            break;
                        }
                        _ => out.push(b),
                    },
                    Lex::Quoted(q) => {
                        out.push(b);
                        if b == b'\\' && q != b'`' {
                            state = Lex::Escaped(q);
                        } else if b == q {
                            // A doubled quote ('') reopens at the next byte.
                            state = Lex::Code;
                        }
                    }
                    Lex::Escaped(q) => {
                        out.push(b);
                        state = Lex::Quoted(q);
                    }
                    Lex::LineComment => {
                        if b == b'\n' {
                            out.push(b'\n');
                            state = Lex::Code;
                        }
                    }
                    Lex::BlockComment => {
                        if b == b'/' && prev == b'*' {
                            out.push(b' ');
                            state = Lex::Code;
                            // `/*/` is not a closed comment: forget the `*`.
                            prev = 0;
                            continue;
                        }
                    }
                }
                prev = b;
            }
            self.reader.consume(used);
            if end {
                let text = String::from_utf8_lossy(&out).trim().to_owned();
                if !text.is_empty() {
                    return Ok(Some(text));
                }
                out.clear();
                prev = 0;
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Lex {
    Code,
    Quoted(u8),
    Escaped(u8),
    LineComment,
    BlockComment,
}

/// A statement's text: `Some` for what [`Statement`] covers.
fn parse(text: &str, want: &dyn Fn(&str) -> bool) -> Result<Option<Statement>, String> {
    let mut p = Parser { s: text, at: 0 };
    let first = p.word();
    if first.eq_ignore_ascii_case("CREATE") {
        p.skip_ws();
        let mut w = p.word();
        if w.eq_ignore_ascii_case("TEMPORARY") {
            p.skip_ws();
            w = p.word();
        }
        if !w.eq_ignore_ascii_case("TABLE") {
            return Ok(None);
        }
        p.skip_ws();
        let mut table = p.ident()?;
        if p.keyword("IF") {
            p.keyword("NOT");
            p.keyword("EXISTS");
            table = p.ident()?;
        }
        let table = p.qualified(table)?;
        if !want(&table) {
            return Ok(None);
        }
        p.skip_ws();
        if !p.eat(b'(') {
            // `CREATE TABLE x LIKE y` and the like carry no columns.
            return Ok(None);
        }
        let mut columns = Vec::new();
        loop {
            p.skip_ws();
            let start = p.at;
            let name = p.ident()?;
            let is_column = p.s[start..].starts_with('`')
                || ![
                    "PRIMARY",
                    "KEY",
                    "INDEX",
                    "UNIQUE",
                    "CONSTRAINT",
                    "FULLTEXT",
                    "SPATIAL",
                    "FOREIGN",
                    "CHECK",
                ]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(&name));
            if is_column {
                columns.push(name);
            }
            // To the next comma at this level, or the closing parenthesis.
            match p.skip_definition()? {
                b',' => continue,
                _ => break,
            }
        }
        return Ok(Some(Statement::Create { table, columns }));
    }
    let insert = first.eq_ignore_ascii_case("INSERT") || first.eq_ignore_ascii_case("REPLACE");
    if !insert {
        return Ok(None);
    }
    for modifier in ["LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE"] {
        p.keyword(modifier);
    }
    p.keyword("INTO");
    p.skip_ws();
    let table = p.ident()?;
    let table = p.qualified(table)?;
    if !want(&table) {
        return Ok(None);
    }
    p.skip_ws();
    let columns = if p.eat(b'(') {
        let mut cols = Vec::new();
        loop {
            p.skip_ws();
            cols.push(p.ident()?);
            p.skip_ws();
            if p.eat(b',') {
                continue;
            }
            if p.eat(b')') {
                break;
            }
            return Err("a column list that does not close".into());
        }
        Some(cols)
    } else {
        None
    };
    if !(p.keyword("VALUES") || p.keyword("VALUE")) {
        // `INSERT … SELECT` and `INSERT … SET` carry no rows to read.
        return Ok(None);
    }
    let mut rows = Vec::new();
    loop {
        p.skip_ws();
        if !p.eat(b'(') {
            return Err(format!("expected '(' at byte {}", p.at));
        }
        let mut row = Vec::new();
        loop {
            p.skip_ws();
            row.push(p.value()?);
            p.skip_ws();
            if p.eat(b',') {
                continue;
            }
            if p.eat(b')') {
                break;
            }
            return Err(format!("expected ',' or ')' at byte {}", p.at));
        }
        rows.push(row);
        p.skip_ws();
        if !p.eat(b',') {
            break;
        }
    }
    Ok(Some(Statement::Insert {
        table,
        columns,
        rows,
    }))
}

struct Parser<'a> {
    s: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &[u8] {
        &self.s.as_bytes()[self.at..]
    }

    fn peek(&self) -> Option<u8> {
        self.rest().first().copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// A bare word (letters, digits, `_`, `$`).
    fn word(&mut self) -> &str {
        self.skip_ws();
        let start = self.at;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        {
            self.at += 1;
        }
        &self.s[start..self.at]
    }

    /// The keyword `k` (any case) if it comes next; consumed then.
    fn keyword(&mut self, k: &str) -> bool {
        let save = self.at;
        if self.word().eq_ignore_ascii_case(k) {
            true
        } else {
            self.at = save;
            false
        }
    }

    /// An identifier, backquoted or bare.
    fn ident(&mut self) -> Result<String, String> {
        self.skip_ws();
        if self.eat(b'`') {
            let mut out = String::new();
            loop {
                let Some(c) = self.s[self.at..].chars().next() else {
                    return Err("an identifier that does not close".into());
                };
                self.at += c.len_utf8();
                if c == '`' {
                    if self.eat(b'`') {
                        out.push('`');
                        continue;
                    }
                    return Ok(out);
                }
                out.push(c);
            }
        }
        let w = self.word();
        if w.is_empty() {
            return Err(format!("expected a name at byte {}", self.at));
        }
        Ok(w.to_owned())
    }

    /// `db.table` → `table`.
    fn qualified(&mut self, first: String) -> Result<String, String> {
        if self.eat(b'.') {
            return self.ident();
        }
        Ok(first)
    }

    /// Skips a column or key definition of a `CREATE TABLE`; returns the
    /// byte that ended it (`,` or `)`).
    fn skip_definition(&mut self) -> Result<u8, String> {
        let mut depth = 0usize;
        loop {
            let Some(b) = self.peek() else {
                return Err("a table definition that does not close".into());
            };
            self.at += 1;
            match b {
                b'\'' | b'"' => {
                    self.at -= 1;
                    self.quoted()?;
                }
                b'`' => {
                    self.at -= 1;
                    self.ident()?;
                }
                b'(' => depth += 1,
                b')' if depth == 0 => return Ok(b')'),
                b')' => depth -= 1,
                b',' if depth == 0 => return Ok(b','),
                _ => {}
            }
        }
    }

    /// A quoted string with MySQL's escapes.
    fn quoted(&mut self) -> Result<String, String> {
        let q = self.peek().ok_or("expected a string")?;
        self.at += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.s[self.at..].chars().next() else {
                return Err("a string that does not close".into());
            };
            self.at += c.len_utf8();
            if c as u32 == u32::from(q) {
                if self.eat(q) {
                    out.push(c);
                    continue;
                }
                return Ok(out);
            }
            if c == '\\' {
                let Some(e) = self.s[self.at..].chars().next() else {
                    return Err("a string that does not close".into());
                };
                self.at += e.len_utf8();
                let unescaped = match e {
                    '0' => '\0',
                    'b' => '\u{8}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'Z' => '\u{1a}',
                    // `\%` and `\_` keep their backslash (MySQL's rule).
                    '%' | '_' => {
                        out.push('\\');
                        e
                    }
                    other => other,
                };
                out.push(unescaped);
                continue;
            }
            out.push(c);
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'\'' | b'"') => Ok(Value::Text(self.quoted()?)),
            Some(b'_') => {
                // A character set introducer: `_utf8mb4'text'`, `_binary 'x'`.
                self.word();
                self.skip_ws();
                self.value()
            }
            Some(b'0') if matches!(self.rest().get(1), Some(b'x' | b'X')) => {
                self.at += 2;
                let start = self.at;
                while self.peek().is_some_and(|b| b.is_ascii_hexdigit()) {
                    self.at += 1;
                }
                let bytes = hex::decode(&self.s[start..self.at])
                    .map_err(|_| format!("a hex literal of odd length at byte {start}"))?;
                Ok(Value::Text(String::from_utf8_lossy(&bytes).into_owned()))
            }
            Some(b) if b == b'-' || b == b'+' || b == b'.' || b.is_ascii_digit() => {
                let start = self.at;
                self.at += 1;
                while self.peek().is_some_and(|b| {
                    b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+')
                }) {
                    self.at += 1;
                }
                Ok(Value::Number(self.s[start..self.at].to_owned()))
            }
            _ => {
                let w = self.word();
                if w.eq_ignore_ascii_case("NULL") {
                    Ok(Value::Null)
                } else if w.eq_ignore_ascii_case("TRUE") {
                    Ok(Value::Number("1".into()))
                } else if w.eq_ignore_ascii_case("FALSE") {
                    Ok(Value::Number("0".into()))
                } else if w.eq_ignore_ascii_case("DEFAULT") {
                    Ok(Value::Null)
                } else {
                    Err(format!("an unknown value at byte {}", self.at))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(dump: &str) -> Vec<Statement> {
        let mut s = Statements::new(dump.as_bytes());
        let mut out = Vec::new();
        while let Some(st) = s.next_statement().unwrap() {
            out.push(st);
        }
        out
    }

    #[test]
    fn mysqldump_output() {
        let dump = r#"-- MariaDB dump 10.19
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
DROP TABLE IF EXISTS `yourls_url`;
CREATE TABLE `yourls_url` (
  `keyword` varchar(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  `url` text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  `title` text DEFAULT NULL,
  `timestamp` timestamp NOT NULL DEFAULT current_timestamp(),
  `ip` varchar(41) NOT NULL,
  `clicks` int(10) unsigned NOT NULL,
  PRIMARY KEY (`keyword`),
  KEY `ip` (`ip`),
  KEY `timestamp` (`timestamp`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
LOCK TABLES `yourls_url` WRITE;
INSERT INTO `yourls_url` VALUES ('a;b','https://x.test/?q=1;2','It\'s \"here\"\nnext','2020-01-02 03:04:05','::1',3),('c','https://y.test/','',  '2021-01-01 00:00:00','127.0.0.1',0),('d','u',NULL,'2021-01-01 00:00:00','1',-1);
UNLOCK TABLES;
"#;
        let st = all(dump);
        assert_eq!(st.len(), 2, "{st:?}");
        assert_eq!(
            st[0],
            Statement::Create {
                table: "yourls_url".into(),
                columns: ["keyword", "url", "title", "timestamp", "ip", "clicks"]
                    .map(String::from)
                    .to_vec()
            }
        );
        let Statement::Insert { table, rows, .. } = &st[1] else {
            panic!("{st:?}")
        };
        assert_eq!(table, "yourls_url");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0][0], Value::Text("a;b".into()));
        assert_eq!(rows[0][2], Value::Text("It's \"here\"\nnext".into()));
        assert_eq!(rows[0][5], Value::Number("3".into()));
        assert_eq!(rows[2][2], Value::Null);
        assert_eq!(rows[2][5], Value::Number("-1".into()));
    }

    #[test]
    fn phpmyadmin_output() {
        let dump = "# phpMyAdmin SQL Dump\n\
            INSERT INTO `yourls_log` (`click_id`, `click_time`, `shorturl`) VALUES\n\
            (1, '2020-01-01 00:00:00', 'it''s'),\n\
            (2, _utf8mb4'2020-01-01 00:00:01', 0x6162);\n\
            /* a comment; with a semicolon */ SELECT 1;";
        let st = all(dump);
        assert_eq!(st.len(), 1);
        let Statement::Insert { columns, rows, .. } = &st[0] else {
            panic!()
        };
        assert_eq!(
            columns.as_deref(),
            Some(
                &[
                    "click_id".to_owned(),
                    "click_time".into(),
                    "shorturl".into()
                ][..]
            )
        );
        assert_eq!(rows[0][2], Value::Text("it's".into()));
        assert_eq!(rows[1][1], Value::Text("2020-01-01 00:00:01".into()));
        assert_eq!(rows[1][2], Value::Text("ab".into()));
    }

    #[test]
    fn broken_statements_are_errors_not_panics() {
        for bad in [
            "INSERT INTO t VALUES (1,",
            "INSERT INTO t VALUES ('x",
            "INSERT INTO t VALUES (bogus)",
            "INSERT INTO t (a VALUES (1)",
            "CREATE TABLE t (a int",
            "INSERT INTO t VALUES (0x1)",
            "INSERT INTO `t",
        ] {
            let mut s = Statements::new(bad.as_bytes());
            assert!(s.next_statement().is_err(), "{bad}");
        }
    }
}

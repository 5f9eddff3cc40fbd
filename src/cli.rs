//! Subcommands other than `serve`: `migrate` and `keys` act on the database
//! directly (they bootstrap a server that has no keys yet); `shorten` and
//! `stats` talk to a running server's API; `copy` moves one store's content
//! into another; `geoip update` installs a newer
//! IP → country database.

use std::io::Write;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::auth::{KEY_PREFIX, Token};
use crate::clicks::geo;
use crate::config::{
    AccessTokenArgs, ClientArgs, CopyArgs, DatabaseArgs, ExportArgs, ExportCommand, ExportFormat,
    GeoipCommand, GeoipUpdateArgs, ImportArgs, ImportCommand, KeysCommand, RulesCommand,
    ShortenArgs, StatsArgs, WebhookScopeArgs, WebhooksCommand,
};
use crate::domain::KeyId;
use crate::store::{Store, StoreConfig};

async fn open(db: &DatabaseArgs) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    let config = StoreConfig::parse(&db.database_url).map_err(anyhow::Error::msg)?;
    Ok(config.open(true).await?)
}

pub async fn migrate(db: DatabaseArgs) -> anyhow::Result<()> {
    open(&db).await?;
    println!(
        "migrations applied to {}",
        crate::store::redact_url(&db.database_url)
    );
    Ok(())
}

pub async fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create {
            name,
            admin,
            database,
        } => {
            let name = name.trim();
            if name.is_empty() || name.len() > 100 {
                bail!("--name must be 1 to 100 characters");
            }
            let store = open(&database).await?;
            let token = Token::generate(KEY_PREFIX);
            let key = store.insert_key(name, token.hash(), admin).await?;
            eprintln!(
                "created {} key {} ({}); it is shown only this once:",
                if admin { "admin" } else { "regular" },
                key.id.0,
                key.name
            );
            println!("{}", token.expose());
        }
        KeysCommand::List { database } => {
            let store = open(&database).await?;
            println!(
                "{:>5}  {:<6}  {:<8}  {:<25}  name",
                "id", "admin", "state", "created"
            );
            for k in store.list_keys().await? {
                println!(
                    "{:>5}  {:<6}  {:<8}  {:<25}  {}",
                    k.id.0,
                    k.admin,
                    if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    },
                    k.created_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    k.name
                );
            }
        }
        KeysCommand::YourlsToken { api_key } => {
            let token = Token::new(api_key.trim().to_owned());
            if !token.is_api_key() {
                bail!("--api-key must be an API key ({KEY_PREFIX}…)");
            }
            println!(
                "{}",
                crate::http::compat::yourls::yourls_token(&token.hash())
            );
        }
        KeysCommand::Revoke { id, database } => {
            let store = open(&database).await?;
            if !store.revoke_key(KeyId(id)).await? {
                bail!("no active key with id {id}");
            }
            println!("revoked key {id}");
        }
    }
    Ok(())
}

pub async fn copy(args: CopyArgs) -> anyhow::Result<()> {
    let (from_url, to_url) = (
        crate::store::redact_url(&args.from),
        crate::store::redact_url(&args.to),
    );
    let parse = |url: &str| StoreConfig::parse(url).map_err(anyhow::Error::msg);
    let (from_config, to_config) = (parse(&args.from)?, parse(&args.to)?);
    if from_url == to_url {
        bail!("--from and --to name the same store");
    }
    // Opening a SQLite URL creates the file: a mistyped source would be
    // copied as an empty store.
    if let StoreConfig::Sqlite { path, .. } = &from_config
        && !path.exists()
    {
        bail!("no database at {} (--from)", path.display());
    }
    let from = from_config
        .open(true)
        .await
        .with_context(|| format!("opening {from_url}"))?;
    let to = to_config
        .open(true)
        .await
        .with_context(|| format!("opening {to_url}"))?;
    let refused = |e: crate::store::StoreError| match e {
        crate::store::StoreError::Unsupported(_) => {
            anyhow::anyhow!("hop copy reads and writes SQLite, PostgreSQL and DynamoDB stores; {e}")
        }
        e => e.into(),
    };
    if crate::store::copy::is_empty(&*from)
        .await
        .map_err(refused)?
    {
        bail!("{from_url} holds no keys, links or clicks: nothing to copy");
    }
    if args.resume && !to.copy_resumable() {
        bail!(
            "a copy into {to_url} cannot be resumed (its rollups are written as batches, which a second run would add again): delete what the first run wrote and copy again"
        );
    }
    if !args.resume && !crate::store::copy::is_empty(&*to).await.map_err(refused)? {
        bail!(
            "{to_url} already holds keys, links or clicks: copy into an empty store (or pass --resume to go on with an interrupted copy)"
        );
    }
    eprintln!("copying {from_url} into {to_url}");
    let started = std::time::Instant::now();
    // Progress: one line rewritten in place on a terminal, a line every
    // 10 s in a log.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let every = std::time::Duration::from_millis(if terminal { 200 } else { 10_000 });
    let mut last_shown = std::time::Instant::now();
    let counts = crate::store::copy::copy(&*from, &*to, |table, rows| {
        if last_shown.elapsed() >= every {
            if terminal {
                eprint!("\r\x1b[K  {table}: {rows} rows");
            } else {
                eprintln!("  {table}: {rows} rows");
            }
            last_shown = std::time::Instant::now();
        }
    })
    .await
    .map_err(refused)?;
    if terminal {
        eprint!("\r\x1b[K");
    }
    println!("{:<16} {:>12} {:>12}", "table", "rows", "new");
    for c in &counts {
        println!("{:<16} {:>12} {:>12}", c.table, c.read, c.written);
    }
    let read: u64 = counts.iter().map(|c| c.read).sum();
    let written: u64 = counts.iter().map(|c| c.written).sum();
    eprintln!(
        "copied {read} rows ({written} new) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub async fn import(cmd: ImportCommand) -> anyhow::Result<()> {
    use crate::import;
    let (mut source, args): (Box<dyn import::Source>, ImportArgs) = match cmd {
        ImportCommand::Yourls(a) => {
            let source: Box<dyn import::Source> = match (&a.from, &a.dump) {
                (_, Some(dump)) => {
                    Box::new(import::yourls::YourlsDump::open(dump.clone(), &a.prefix)?)
                }
                #[cfg(feature = "mysql")]
                (Some(url), None) => {
                    Box::new(import::yourls::YourlsDb::connect(url, &a.prefix).await?)
                }
                #[cfg(not(feature = "mysql"))]
                (Some(_), None) => bail!(
                    "this hop was built without the mysql feature: import a SQL dump (--dump)"
                ),
                (None, None) => bail!("give --from mysql://… or --dump FILE"),
            };
            (source, with_name(a.import, "yourls"))
        }
        ImportCommand::Shlink(a) => {
            let source: Box<dyn import::Source> = match (&a.from, &a.csv) {
                (_, Some(csv)) => Box::new(import::shlink::ShlinkCsv::open(csv.clone())?),
                (Some(url), None) => Box::new(import::shlink::ShlinkApi::new(
                    url,
                    a.api_key.as_deref().unwrap_or(""),
                )?),
                (None, None) => bail!("give --from URL --api-key KEY, or --csv FILE"),
            };
            (source, with_name(a.import, "shlink"))
        }
        ImportCommand::Kutt(a) => (
            Box::new(import::kutt::Kutt::new(
                &a.from,
                a.api_key.as_deref().unwrap_or(""),
            )?),
            with_name(a.import, "kutt"),
        ),
        ImportCommand::Dub(a) => (
            Box::new(import::dub::Dub::new(
                &a.api,
                a.token.as_deref().unwrap_or(""),
            )?),
            with_name(a.import, "dub"),
        ),
        ImportCommand::Bitly(a) => (
            Box::new(import::bitly::Bitly::new(
                &a.api,
                a.token.as_deref(),
                a.csv.clone(),
            )?),
            with_name(a.import, "bitly"),
        ),
        ImportCommand::Csv(a) => (
            Box::new(import::csv::CsvLinks::open(a.file)?),
            with_name(a.import, "csv"),
        ),
    };
    let store = open(&args.database).await?;
    if let Some(owner) = args.owner
        && !store
            .list_keys()
            .await?
            .iter()
            .any(|k| k.id.0 == owner && k.revoked_at.is_none())
    {
        bail!("--owner {owner}: no active API key with that id (see `hop keys list`)");
    }
    let geo = crate::clicks::geo::open_configured(&args.geoip_db, &args.geoip_update_path)?;
    let enricher = crate::clicks::enrich::Enricher::new(Some(geo));
    let opts = import::ImportOptions {
        source: args.source_name.clone(),
        on_conflict: args.on_conflict.parse().map_err(anyhow::Error::msg)?,
        owner: args.owner.map(KeyId),
        own_hosts: args
            .public_url
            .host_str()
            .map(str::to_owned)
            .into_iter()
            .collect(),
        settle_ms: i64::from(args.settle_secs) * 1000,
        ..import::ImportOptions::default()
    };
    let started = std::time::Instant::now();
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let every = std::time::Duration::from_millis(if terminal { 200 } else { 10_000 });
    let mut last_shown = std::time::Instant::now();
    let summary = import::run(&*store, &enricher, &mut *source, &opts, |p| {
        if last_shown.elapsed() < every {
            return;
        }
        let line = match p {
            import::Progress::Links { done, of } => {
                let width = 30;
                let filled = (done * width / of.max(1)) as usize;
                format!(
                    "links  [{}{}] {done}/{of}",
                    "#".repeat(filled),
                    " ".repeat(width as usize - filled)
                )
            }
            import::Progress::Clicks { read } => format!("clicks {read} read"),
        };
        if terminal {
            eprint!("\r\x1b[K  {line}");
        } else {
            eprintln!("  {line}");
        }
        last_shown = std::time::Instant::now();
    })
    .await?;
    if terminal {
        eprint!("\r\x1b[K");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    print_summary(&summary, started.elapsed());
    Ok(())
}

/// The import's args with `--source-name` qualified by the source's kind
/// (`yourls:default`), so that sources of two kinds never share marks.
fn with_name(mut args: ImportArgs, kind: &str) -> ImportArgs {
    args.source_name = format!("{kind}:{}", args.source_name);
    args
}

fn print_summary(s: &crate::import::Summary, took: std::time::Duration) {
    println!("links   {:>10} read", s.links_read);
    println!("        {:>10} created", s.links_created);
    println!("        {:>10} already imported", s.links_existing);
    println!("        {:>10} created with a suffix", s.links_renamed);
    println!("        {:>10} overwritten", s.links_overwritten);
    println!("        {:>10} skipped", s.skipped.len());
    println!("clicks  {:>10} read", s.clicks_read);
    println!("        {:>10} new", s.clicks_new);
    println!("        {:>10} of links not imported", s.clicks_skipped);
    if s.clicks_counted > 0 {
        println!(
            "        {:>10} counted by the source without detail (stored as counted clicks)",
            s.clicks_counted
        );
    }
    match s.source_clicks {
        Some(source) => println!(
            "totals  {source:>10} counted by the source, {} in hop{}",
            s.hop_clicks,
            if source == s.hop_clicks {
                ": equal"
            } else {
                ""
            }
        ),
        None => println!("totals  {:>10} clicks in hop", s.hop_clicks),
    }
    for k in &s.skipped {
        println!("skipped {}: {}", k.key, k.reason);
    }
    if s.mismatched_links > 0 {
        println!(
            "{} links count differently in the source and in hop (a source whose counter includes clicks it did not log):",
            s.mismatched_links
        );
        for m in &s.mismatches {
            println!(
                "  {} (hop {}): source {}, hop {}",
                m.key, m.slug, m.source, m.hop
            );
        }
    }
    eprintln!("imported in {:.1} s", took.as_secs_f64());
}

fn request(
    client: &reqwest::Client,
    args: &ClientArgs,
    method: reqwest::Method,
    path: &str,
) -> anyhow::Result<reqwest::RequestBuilder> {
    let url = args.server.join(path).context("building the request URL")?;
    let mut req = client.request(method, url);
    if let Some(key) = &args.api_key {
        req = req.bearer_auth(key.expose());
    }
    Ok(req)
}

/// A request's query: the options given, and `include_bots=true` when
/// asked for.
fn query_of<'a>(
    options: &[(&'a str, &Option<String>)],
    include_bots: bool,
) -> Vec<(&'a str, String)> {
    let mut query: Vec<(&str, String)> = options
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v.clone())))
        .collect();
    if include_bots {
        query.push(("include_bots", "true".into()));
    }
    query
}

async fn answer(res: reqwest::Response) -> anyhow::Result<Value> {
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let code = body["error"]["code"].as_str().unwrap_or("error");
        let message = body["error"]["message"].as_str().unwrap_or("");
        bail!("{status}: {code}: {message}");
    }
    Ok(body)
}

pub async fn shorten(args: ShortenArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut body = json!({ "url": args.url });
    if let Some(slug) = &args.slug {
        body["slug"] = json!(slug);
    }
    if let Some(title) = &args.title {
        body["title"] = json!(title);
    }
    if !args.tags.is_empty() {
        body["tags"] = json!(args.tags);
    }
    if let Some(file) = &args.rules {
        body["rules"] = json_of(&read_input(file)?).context("reading the rules")?;
    }
    if let Some(url) = &args.fallback_url {
        body["fallback_url"] = json!(url);
    }
    if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        body["password"] = json!(line.trim_end_matches(['\r', '\n']));
    }
    let mut preview = serde_json::Map::new();
    for (k, v) in [
        ("title", &args.preview_title),
        ("description", &args.preview_description),
        ("image", &args.preview_image),
    ] {
        if let Some(v) = v {
            preview.insert(k.into(), json!(v));
        }
    }
    if !preview.is_empty() {
        body["preview"] = Value::Object(preview);
    }
    let res = request(
        &client,
        &args.client,
        reqwest::Method::POST,
        "/api/v1/links",
    )?
    .json(&body)
    .send()
    .await
    .with_context(|| format!("cannot reach {}", args.client.server))?;
    let link = answer(res).await?;
    println!("{}", link["short_url"].as_str().unwrap_or_default());
    if let Some(secret) = link["secret"].as_str() {
        eprintln!("link secret (shown once; it grants stats and edits): {secret}");
    }
    Ok(())
}

/// Where an export goes: standard output, or `FILE.partial` renamed to
/// `FILE` once everything arrived, so a failed export never leaves a
/// truncated file under the name asked for.
struct ExportOut {
    out: Box<dyn std::io::Write>,
    file: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl ExportOut {
    fn open(path: Option<&std::path::Path>) -> anyhow::Result<ExportOut> {
        let Some(path) = path else {
            return Ok(ExportOut {
                out: Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
                file: None,
            });
        };
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = std::path::PathBuf::from(partial);
        let f = std::fs::File::create(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        Ok(ExportOut {
            out: Box::new(std::io::BufWriter::new(f)),
            file: Some((partial, path.to_owned())),
        })
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        drop(self.out);
        if let Some((partial, path)) = self.file {
            std::fs::rename(&partial, &path).with_context(|| {
                format!("cannot rename {} to {}", partial.display(), path.display())
            })?;
        }
        Ok(())
    }
}

/// Counts the records of an export stream chunk by chunk. NDJSON: one per
/// line (JSON escapes newlines and quotes inside strings). CSV: a newline
/// ends a record unless it is inside quotes (an escaped quote, `""`,
/// toggles twice, so parity is enough).
struct Records {
    csv: bool,
    in_quotes: bool,
    records: u64,
}

impl Records {
    fn new(format: ExportFormat) -> Records {
        Records {
            csv: format == ExportFormat::Csv,
            in_quotes: false,
            records: 0,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'"' if self.csv => self.in_quotes = !self.in_quotes,
                b'\n' if !self.in_quotes => self.records += 1,
                _ => {}
            }
        }
    }
}

pub async fn export(cmd: ExportCommand) -> anyhow::Result<()> {
    match cmd {
        ExportCommand::Clicks(args) => export_clicks(args).await,
        ExportCommand::Links(args) => export_links(args).await,
    }
}

async fn export_clicks(args: ExportArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let query = query_of(
        &[("from", &args.from), ("to", &args.to), ("tag", &args.tag)],
        args.include_bots,
    );
    let path = match args.format {
        ExportFormat::Csv => "/api/v1/clicks.csv",
        ExportFormat::Ndjson => "/api/v1/clicks.ndjson",
    };
    let mut res = request(&client, &args.client, reqwest::Method::GET, path)?
        .query(&query)
        .send()
        .await
        .with_context(|| format!("cannot reach {}", args.client.server))?;
    if !res.status().is_success() {
        answer(res).await?;
        bail!("unexpected answer");
    }
    let mut out = ExportOut::open(args.output.as_deref())?;
    let mut records = Records::new(args.format);
    while let Some(chunk) = res.chunk().await.context("the export was cut off")? {
        records.feed(&chunk);
        out.out.write_all(&chunk)?;
    }
    out.finish()?;
    let clicks = match args.format {
        ExportFormat::Csv => records.records.saturating_sub(1),
        ExportFormat::Ndjson => records.records,
    };
    eprintln!("exported {clicks} clicks");
    Ok(())
}

/// The links CSV's columns; the first six are what a plain CSV import
/// reads back.
const LINK_COLUMNS: [&str; 11] = [
    "url",
    "slug",
    "title",
    "tags",
    "created_at",
    "expires_at",
    "max_clicks",
    "clicks",
    "disabled",
    "redirect_status",
    "short_url",
];

/// One cell of the links CSV: text as a spreadsheet will not run it, tags
/// joined by commas, numbers and booleans as JSON writes them.
fn link_cell(link: &Value, column: &str) -> String {
    use crate::http::export::spreadsheet_safe;
    match &link[column] {
        Value::Null => String::new(),
        Value::String(s) => spreadsheet_safe(s).into_owned(),
        Value::Array(tags) => {
            let tags: Vec<&str> = tags.iter().filter_map(Value::as_str).collect();
            spreadsheet_safe(&tags.join(",")).into_owned()
        }
        v => v.to_string(),
    }
}

async fn export_links(args: ExportArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut out = ExportOut::open(args.output.as_deref())?;
    let csv = args.format == ExportFormat::Csv;
    let mut cursor: Option<String> = None;
    let mut n = 0u64;
    loop {
        let mut query: Vec<(&str, String)> = vec![("limit", "200".into())];
        if let Some(tag) = &args.tag {
            query.push(("tag", tag.clone()));
        }
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let res = request(&client, &args.client, reqwest::Method::GET, "/api/v1/links")?
            .query(&query)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", args.client.server))?;
        let page = answer(res).await?;
        let links = page["links"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        n += links.len() as u64;
        if csv {
            let mut w = csv::Writer::from_writer(Vec::new());
            if cursor.is_none() {
                w.write_record(LINK_COLUMNS)?;
            }
            for link in links {
                w.write_record(LINK_COLUMNS.map(|c| link_cell(link, c)))?;
            }
            out.out.write_all(&w.into_inner()?)?;
        } else {
            for link in links {
                serde_json::to_writer(&mut out.out, link)?;
                out.out.write_all(b"\n")?;
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    out.finish()?;
    eprintln!("exported {n} links");
    Ok(())
}

pub async fn stats(args: StatsArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut query = vec![("tz", args.tz.clone())];
    query.extend(query_of(
        &[
            ("from", &args.from),
            ("to", &args.to),
            ("interval", &args.interval),
        ],
        args.include_bots,
    ));
    let path = format!("/api/v1/links/{}/stats", args.slug);
    let res = request(&client, &args.client, reqwest::Method::GET, &path)?
        .query(&query)
        .send()
        .await
        .with_context(|| format!("cannot reach {}", args.client.server))?;
    let stats = answer(res).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(());
    }
    println!(
        "{}  {} → {}",
        args.slug,
        stats["from"].as_str().unwrap_or(""),
        stats["to"].as_str().unwrap_or("")
    );
    println!("clicks           {}", stats["total_clicks"]);
    println!("unique visitors  {}", stats["unique_visitors"]);
    if let Some(top) = stats["top"].as_object() {
        for (name, entries) in top {
            let entries = entries.as_array().cloned().unwrap_or_default();
            if entries.is_empty() {
                continue;
            }
            let shown: Vec<String> = entries
                .iter()
                .take(5)
                .map(|e| format!("{} {}", e["value"].as_str().unwrap_or(""), e["clicks"]))
                .collect();
            println!("{name:<16} {}", shown.join(", "));
        }
    }
    Ok(())
}

/// The text of FILE, or of standard input for `-`.
fn read_input(file: &str) -> anyhow::Result<String> {
    if file == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("reading standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(file).with_context(|| format!("reading {file}"))
}

fn json_of(text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).context("not JSON")
}

pub async fn rules(cmd: RulesCommand) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let (args, method, path, body) = match &cmd {
        RulesCommand::Show { slug, client } => (
            client,
            reqwest::Method::GET,
            format!("/api/v1/links/{slug}"),
            None,
        ),
        RulesCommand::Set { slug, file, client } => {
            let rules = json_of(&read_input(file)?).context("reading the rules")?;
            let body = json!({ "rules": rules });
            (
                client,
                reqwest::Method::PATCH,
                format!("/api/v1/links/{slug}"),
                Some(body),
            )
        }
        RulesCommand::Clear { slug, client } => (
            client,
            reqwest::Method::PATCH,
            format!("/api/v1/links/{slug}"),
            Some(json!({ "rules": [] })),
        ),
        RulesCommand::Patch {
            slug,
            rule_id,
            change,
            client,
        } => {
            let text = match change.strip_prefix('@') {
                Some(file) => read_input(file)?,
                None => change.clone(),
            };
            let body = json_of(&text).context("reading the change")?;
            (
                client,
                reqwest::Method::PATCH,
                format!("/api/v1/links/{slug}/rules/{rule_id}"),
                Some(body),
            )
        }
    };
    let mut req = request(&client, args, method, &path)?;
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req
        .send()
        .await
        .with_context(|| format!("cannot reach {}", args.server))?;
    let link = answer(res).await?;
    println!("{}", serde_json::to_string_pretty(&link["rules"])?);
    Ok(())
}

fn webhook_scope(scope: &WebhookScopeArgs) -> Option<Value> {
    match (&scope.tag, scope.link.is_empty()) {
        (Some(tag), _) => Some(json!({ "tag": tag })),
        (None, false) => Some(json!({ "links": scope.link })),
        (None, true) => None,
    }
}

/// `hop webhooks …`: each subcommand one API call.
pub async fn webhooks(cmd: WebhooksCommand) -> anyhow::Result<()> {
    use reqwest::Method;
    let http = reqwest::Client::new();
    let base = "/api/v1/webhooks";
    let (client, method, path, query, body) = match &cmd {
        WebhooksCommand::Create {
            url,
            events,
            description,
            scope,
            instance_wide,
            client,
        } => {
            let mut body = json!({ "url": url, "events": events, "instance_wide": instance_wide });
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let Some(s) = webhook_scope(scope) {
                body["scope"] = s;
            }
            (client, Method::POST, base.to_owned(), vec![], Some(body))
        }
        WebhooksCommand::List { client } => (client, Method::GET, base.to_owned(), vec![], None),
        WebhooksCommand::Show { id, client } => {
            (client, Method::GET, format!("{base}/{id}"), vec![], None)
        }
        WebhooksCommand::Update {
            id,
            url,
            events,
            description,
            scope,
            all_links,
            enable,
            disable,
            client,
        } => {
            let mut body = json!({});
            if let Some(u) = url {
                body["url"] = json!(u);
            }
            if !events.is_empty() {
                body["events"] = json!(events);
            }
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let Some(s) = webhook_scope(scope) {
                body["scope"] = s;
            } else if *all_links {
                body["scope"] = json!({});
            }
            if *enable || *disable {
                body["enabled"] = json!(*enable);
            }
            (
                client,
                Method::PATCH,
                format!("{base}/{id}"),
                vec![],
                Some(body),
            )
        }
        WebhooksCommand::Delete { id, client } => {
            (client, Method::DELETE, format!("{base}/{id}"), vec![], None)
        }
        WebhooksCommand::RotateSecret {
            id,
            grace_seconds,
            client,
        } => {
            let body = match grace_seconds {
                Some(g) => json!({ "grace_seconds": g }),
                None => json!({}),
            };
            let path = format!("{base}/{id}/rotate-secret");
            (client, Method::POST, path, vec![], Some(body))
        }
        WebhooksCommand::Messages {
            id,
            state,
            limit,
            client,
        } => {
            let query = query_of(&[("state", state), ("limit", limit)], false);
            (
                client,
                Method::GET,
                format!("{base}/{id}/messages"),
                query,
                None,
            )
        }
        WebhooksCommand::Log {
            id,
            message,
            limit,
            client,
        } => {
            let query = query_of(&[("message", message), ("limit", limit)], false);
            (
                client,
                Method::GET,
                format!("{base}/{id}/attempts"),
                query,
                None,
            )
        }
        WebhooksCommand::Replay {
            id,
            message,
            from,
            to,
            client,
        } => {
            let body = match (message, from, to) {
                (Some(m), _, _) => json!({ "message_id": m }),
                (None, Some(f), Some(t)) => json!({ "from": f, "to": t }),
                _ => bail!("give --message ID, or --from and --to"),
            };
            (
                client,
                Method::POST,
                format!("{base}/{id}/replay"),
                vec![],
                Some(body),
            )
        }
    };
    let mut req = request(&http, client, method, &path)?.query(&query);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req
        .send()
        .await
        .with_context(|| format!("cannot reach {}", client.server))?;
    if res.status() == reqwest::StatusCode::NO_CONTENT {
        eprintln!("deleted");
        return Ok(());
    }
    let answer = answer(res).await?;
    match &cmd {
        WebhooksCommand::List { .. } => {
            for w in answer["webhooks"].as_array().into_iter().flatten() {
                let events: Vec<&str> = w["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                println!(
                    "{}\t{}\t{}\t{}",
                    w["id"].as_str().unwrap_or_default(),
                    if w["enabled"] == true {
                        "enabled"
                    } else {
                        "disabled"
                    },
                    events.join(","),
                    w["url"].as_str().unwrap_or_default()
                );
            }
        }
        WebhooksCommand::Replay { .. } => {
            println!("{} messages will be sent again", answer["replayed"]);
        }
        _ => {
            println!("{}", serde_json::to_string_pretty(&answer)?);
            if answer.get("secret").is_some() {
                eprintln!("the secret is shown this once: keep it to verify signatures");
            }
        }
    }
    Ok(())
}

pub async fn access_token(args: AccessTokenArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut body = json!({});
    if let Some(secs) = args.expires_in {
        body["expires_in"] = json!(secs);
    }
    let path = format!("/api/v1/links/{}/access-tokens", args.slug);
    let res = request(&client, &args.client, reqwest::Method::POST, &path)?
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach {}", args.client.server))?;
    let token = answer(res).await?;
    println!("{}", token["url"].as_str().unwrap_or_default());
    eprintln!(
        "opens the link once, until {}",
        token["expires_at"].as_str().unwrap_or("?")
    );
    Ok(())
}

pub async fn geoip(cmd: GeoipCommand) -> anyhow::Result<()> {
    match cmd {
        GeoipCommand::Update(args) => geoip_update(args).await,
    }
}

/// Fetches, unpacks and checks a database before it replaces anything: a
/// download that fails, or is not an IP → country `.mmdb`, leaves the
/// installed file as it was.
async fn geoip_update(args: GeoipUpdateArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(args.timeout_secs.max(1)))
        .user_agent(concat!("hop/", env!("CARGO_PKG_VERSION")))
        .build()?;
    // One line saying what went wrong and that nothing was replaced.
    let mmdb = checked_download(&client, &args.from)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}; {} is unchanged", args.to.display()))?;
    let summary = geo::check_mmdb(&mmdb).map_err(|e| {
        anyhow::anyhow!(
            "refusing {}: {e:#}; {} is unchanged",
            args.from,
            args.to.display()
        )
    })?;
    geo::install(&args.to, &mmdb)?;
    println!(
        "installed {} ({} bytes): {summary}",
        args.to.display(),
        mmdb.len()
    );
    eprintln!("hop serve and hop worker use it from their next start, unless --geoip-db is given");
    Ok(())
}

/// The `.mmdb` that `from` holds or leads to (through npm metadata).
async fn checked_download(client: &reqwest::Client, from: &str) -> anyhow::Result<Vec<u8>> {
    let mut fetched = fetch(client, from).await?;
    if let Some((tarball, integrity)) = npm_dist(&fetched) {
        eprintln!("{from} is npm package metadata: fetching {tarball}");
        fetched = fetch(client, &tarball).await?;
        if let Some(integrity) = integrity {
            check_integrity(&fetched, &integrity).with_context(|| format!("refusing {tarball}"))?;
        }
    }
    geo::unpack_mmdb(fetched).with_context(|| format!("refusing {from}"))
}

/// The bytes at an http(s) URL, or of a file.
async fn fetch(client: &reqwest::Client, from: &str) -> anyhow::Result<Vec<u8>> {
    if !(from.starts_with("http://") || from.starts_with("https://")) {
        return std::fs::read(from).with_context(|| format!("cannot read {from}"));
    }
    let res = client
        .get(from)
        .send()
        .await
        .with_context(|| format!("cannot fetch {from}"))?;
    let status = res.status();
    if !status.is_success() {
        bail!("{from}: HTTP {status}");
    }
    let body = res
        .bytes()
        .await
        .with_context(|| format!("cannot fetch {from}"))?;
    Ok(body.to_vec())
}

/// The tarball (and its `integrity`) named by npm registry metadata, such
/// as `https://registry.npmjs.org/PACKAGE/latest`; None for anything else.
fn npm_dist(fetched: &[u8]) -> Option<(String, Option<String>)> {
    if fetched.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    let meta: Value = serde_json::from_slice(fetched).ok()?;
    let dist = &meta["dist"];
    Some((
        dist["tarball"].as_str()?.to_owned(),
        dist["integrity"].as_str().map(str::to_owned),
    ))
}

/// Checks an npm `integrity` value (`sha512-BASE64`); other algorithms are
/// not checked (the database is checked on its own after).
fn check_integrity(bytes: &[u8], integrity: &str) -> anyhow::Result<()> {
    use base64::Engine;
    use sha2::Digest;
    let Some(expected) = integrity.strip_prefix("sha512-") else {
        return Ok(());
    };
    let actual = base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(bytes));
    if actual != expected {
        bail!("its sha512 does not match the registry's integrity value");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_metadata_names_its_tarball() {
        let meta = br#" {"name":"x","dist":{"tarball":"http://127.0.0.1:1/x.tgz","integrity":"sha512-abc"}}"#;
        assert_eq!(
            npm_dist(meta),
            Some(("http://127.0.0.1:1/x.tgz".into(), Some("sha512-abc".into())))
        );
        assert_eq!(npm_dist(b"{\"dist\":{}}"), None);
        assert_eq!(npm_dist(b"\x1f\x8b..."), None);
    }

    #[test]
    fn integrity_is_checked() {
        use base64::Engine;
        use sha2::Digest;
        let good = format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(b"db"))
        );
        assert!(check_integrity(b"db", &good).is_ok());
        assert!(check_integrity(b"other", &good).is_err());
        assert!(check_integrity(b"other", "sha1-xyz").is_ok());
    }
}

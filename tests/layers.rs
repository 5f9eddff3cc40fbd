//! The layers hold: no module imports one above it, and no folder's modules
//! import each other in a circle.
//!
//! The order is the one documented in `src/lib.rs` (its `# Layout` list,
//! lowest layer first; modules named on one line share a layer). Every
//! `crate::…`, `super::…` and `self::…` path in `src/` (code only, comments
//! and strings left out) is an edge from the module it is written in to the
//! module it names. Two checks:
//! - between top-level modules, an edge never goes to a higher layer, and
//!   modules sharing a layer form no circle;
//! - inside every folder (`http/`, `store/`, …), the sibling modules form no
//!   circle.
//!
//! Run it alone with `cargo test --test layers`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A module's path inside the crate, e.g. `["http", "ui", "edit"]`.
type ModPath = Vec<String>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/` with its module path (`lib.rs` and
/// `main.rs` are the roots and are left out).
fn modules() -> Vec<(PathBuf, ModPath)> {
    fn walk(dir: &Path, prefix: &[String], out: &mut Vec<(PathBuf, ModPath)>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let mut module = prefix.to_vec();
            if path.is_dir() {
                module.push(name);
                walk(&path, &module, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                if prefix.is_empty() && (name == "lib" || name == "main") {
                    continue;
                }
                if name != "mod" {
                    module.push(name);
                }
                out.push((path, module));
            }
        }
    }
    let mut out = Vec::new();
    walk(&src(), &[], &mut out);
    out
}

/// The source with comments, strings and char literals blanked out, so
/// that paths in docs or messages do not count.
fn code_only(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &source[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            i += end;
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(rest.len(), |e| e + 2);
            i += end;
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|c| *c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            let end = rest[body..]
                .find(&close)
                .map_or(rest.len(), |e| body + e + close.len());
            out.push_str("\"\"");
            i += end;
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() {
                match rest.as_bytes()[j] {
                    b'\\' => j += 2,
                    b'"' => break,
                    _ => j += 1,
                }
            }
            out.push_str("\"\"");
            i += (j + 1).min(rest.len());
        } else if rest.starts_with("'") && is_char_literal(rest) {
            let end = rest[1..].find('\'').map_or(rest.len(), |e| e + 2);
            out.push_str("' '");
            i += end;
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `'a'` or `'\n'`, not a lifetime such as `'a` or `'static`.
fn is_char_literal(rest: &str) -> bool {
    let mut chars = rest.chars().skip(1);
    match chars.next() {
        Some('\\') => true,
        Some(_) => chars.next() == Some('\''),
        None => false,
    }
}

/// The paths a piece of code names through `crate::`, `super::` or `self::`,
/// with `use` groups (`crate::{a, b::{c, d}}`) expanded, resolved against
/// the module the code is in.
fn named_paths(code: &str, here: &ModPath) -> Vec<ModPath> {
    let tokens = tokenize(code);
    let mut paths = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i].as_str();
        let starts = matches!(t, "crate" | "super" | "self")
            && tokens.get(i + 1).map(String::as_str) == Some("::")
            && (i == 0 || tokens[i - 1] != "::");
        if !starts {
            i += 1;
            continue;
        }
        let mut prefix = Vec::new();
        let mut leaves = Vec::new();
        i = parse_tree(&tokens, i, &mut prefix, &mut leaves);
        for leaf in leaves {
            if let Some(path) = resolve(&leaf, here) {
                paths.push(path);
            }
        }
    }
    paths
}

fn tokenize(code: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = code.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            let mut end = start + c.len_utf8();
            while let Some(&(i, d)) = chars.peek() {
                if d.is_alphanumeric() || d == '_' {
                    end = i + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(code[start..end].to_string());
        } else if c == ':' && chars.peek().map(|p| p.1) == Some(':') {
            chars.next();
            tokens.push("::".to_string());
        } else if !c.is_whitespace() {
            tokens.push(c.to_string());
        }
    }
    tokens
}

/// Parses `a::b::{c, d::e}` from `tokens[i]`; pushes every full path to
/// `leaves` and returns the index after the tree.
fn parse_tree(
    tokens: &[String],
    mut i: usize,
    prefix: &mut Vec<String>,
    leaves: &mut Vec<Vec<String>>,
) -> usize {
    let depth = prefix.len();
    loop {
        match tokens.get(i).map(String::as_str) {
            Some("{") => {
                i += 1;
                loop {
                    match tokens.get(i).map(String::as_str) {
                        Some("}") => {
                            i += 1;
                            break;
                        }
                        Some(",") => i += 1,
                        None => break,
                        Some(_) => i = parse_tree(tokens, i, prefix, leaves),
                    }
                }
                break;
            }
            Some(t) if t.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                prefix.push(t.to_string());
                i += 1;
                if tokens.get(i).map(String::as_str) == Some("::") {
                    i += 1;
                    continue;
                }
                leaves.push(prefix.clone());
                break;
            }
            _ => {
                if prefix.len() > depth {
                    leaves.push(prefix.clone());
                }
                break;
            }
        }
    }
    prefix.truncate(depth);
    i
}

fn resolve(path: &[String], here: &ModPath) -> Option<ModPath> {
    let mut segments = path.iter().peekable();
    let mut base: ModPath = match segments.peek().map(|s| s.as_str()) {
        Some("crate") => {
            segments.next();
            Vec::new()
        }
        Some("self" | "super") => here.clone(),
        _ => return None,
    };
    // `here` is a file's module: for `mod.rs`, its folder's module, so
    // `super` leaves the folder and `self` stays in it.
    while let Some(s) = segments.peek() {
        match s.as_str() {
            "self" => {
                segments.next();
            }
            "super" => {
                segments.next();
                base.pop()?;
            }
            _ => break,
        }
    }
    base.extend(segments.cloned());
    Some(base)
}

/// The modules of the documented layers, lowest first.
fn documented_layers() -> Vec<Vec<String>> {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut in_layout = false;
    let mut layers = Vec::new();
    for line in lib.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.trim();
        if doc.starts_with('#') {
            in_layout = doc == "# Layout";
            continue;
        }
        if in_layout && let Some(item) = doc.strip_prefix("- ") {
            // The modules this line is about: the links before its first `:`.
            let head = item.split(':').next().unwrap_or_default();
            let names: Vec<String> = head
                .split("[`")
                .skip(1)
                .filter_map(|s| s.split('`').next())
                .map(str::to_string)
                .collect();
            if !names.is_empty() {
                layers.push(names);
            }
        }
    }
    layers
}

/// The edges between sibling modules, per folder: `parent -> (from, to)`.
fn sibling_edges() -> BTreeMap<ModPath, BTreeSet<(String, String, String)>> {
    let all = modules();
    let known: BTreeSet<ModPath> = all.iter().map(|(_, m)| m.clone()).collect();
    let mut edges: BTreeMap<ModPath, BTreeSet<(String, String, String)>> = BTreeMap::new();
    for (file, here) in &all {
        let code = code_only(&fs::read_to_string(file).unwrap());
        for target in named_paths(&code, here) {
            let common = here.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common >= here.len() || common >= target.len() {
                continue; // itself, a child, or an item of an ancestor
            }
            let to_module: ModPath = target[..=common].to_vec();
            if !known.contains(&to_module) {
                continue; // an item of the parent module, not a module
            }
            let parent = here[..common].to_vec();
            edges.entry(parent).or_default().insert((
                here[common].clone(),
                target[common].clone(),
                format!(
                    "{} names {}",
                    file.strip_prefix(src()).unwrap().display(),
                    target.join("::")
                ),
            ));
        }
    }
    edges
}

/// A circle among `edges`, if there is one, as the modules on it.
fn find_circle(edges: &BTreeSet<(String, String, String)>) -> Option<Vec<String>> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, to, _) in edges {
        graph.entry(from).or_default().insert(to);
    }
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| *n == node) {
            let mut circle: Vec<String> = stack[at..].iter().map(|s| s.to_string()).collect();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node);
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(c) = visit(node, &graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_module_imports_a_higher_layer() {
    let layers = documented_layers();
    let rank: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, names)| names.iter().map(move |n| (n.as_str(), i)))
        .collect();
    let top: BTreeSet<String> = modules().into_iter().map(|(_, m)| m[0].clone()).collect();
    let undocumented: Vec<_> = top
        .iter()
        .filter(|m| !rank.contains_key(m.as_str()))
        .collect();
    assert!(
        undocumented.is_empty(),
        "modules missing from the Layout list in src/lib.rs: {undocumented:?}"
    );
    let edges = sibling_edges();
    let upward: Vec<&str> = edges
        .get(&Vec::new())
        .into_iter()
        .flatten()
        .filter(|(from, to, _)| rank[from.as_str()] < rank[to.as_str()])
        .map(|(_, _, why)| why.as_str())
        .collect();
    assert!(
        upward.is_empty(),
        "imports of a higher layer:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_folder_has_a_circle() {
    for (parent, edges) in sibling_edges() {
        if let Some(circle) = find_circle(&edges) {
            let place = if parent.is_empty() {
                "crate".to_string()
            } else {
                parent.join("::")
            };
            let why: Vec<&str> = edges
                .iter()
                .filter(|(from, to, _)| circle.windows(2).any(|w| &w[0] == from && &w[1] == to))
                .map(|(_, _, why)| why.as_str())
                .collect();
            panic!(
                "a circle in {place}: {}\n{}",
                circle.join(" -> "),
                why.join("\n")
            );
        }
    }
}

#[test]
fn the_checker_sees_groups_and_super() {
    let here: ModPath = vec!["http".into(), "ui".into(), "edit".into()];
    let code = code_only(
        "use super::{render, shared::{a, b}}; // crate::nope\nuse crate::{store, domain::Slug};\nlet x = \"crate::no\"; crate::app::MAX_HEAD;",
    );
    let mut paths = named_paths(&code, &here);
    paths.sort();
    let joined: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        joined,
        vec![
            "app::MAX_HEAD",
            "domain::Slug",
            "http::ui::render",
            "http::ui::shared::a",
            "http::ui::shared::b",
            "store",
        ]
    );
    let circle: BTreeSet<(String, String, String)> = [("a", "b"), ("b", "c"), ("c", "a")]
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string(), String::new()))
        .collect();
    assert!(find_circle(&circle).is_some());
}

/// The service layer is HTTP-free: no axum (or hyper, or tower) in its
/// code, so the API, the UI and later callers (the CLI, importers) share
/// it as it is.
#[test]
fn the_service_layer_knows_nothing_of_http() {
    let mut found = Vec::new();
    for (file, module) in modules() {
        if module.first().map(String::as_str) != Some("service") {
            continue;
        }
        let code = code_only(&fs::read_to_string(&file).unwrap());
        for web in ["axum", "hyper", "tower", "http::"] {
            if code.contains(web) {
                found.push(format!("{} names {web}", file.display()));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

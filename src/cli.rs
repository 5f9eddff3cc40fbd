//! Subcommands other than `serve`: `migrate` and `keys` act on the database
//! directly (they bootstrap a server that has no keys yet); `shorten` and
//! `stats` talk to a running server's API.

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::auth::{KEY_PREFIX, Token};
use crate::config::{ClientArgs, DatabaseArgs, KeysCommand, ShortenArgs, StatsArgs};
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

pub async fn stats(args: StatsArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut query: Vec<(&str, String)> = vec![("tz", args.tz.clone())];
    for (k, v) in [
        ("from", &args.from),
        ("to", &args.to),
        ("interval", &args.interval),
    ] {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    if args.include_bots {
        query.push(("include_bots", "true".into()));
    }
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

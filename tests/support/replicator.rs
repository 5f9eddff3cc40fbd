//! A test-only stand-in for Global Tables' replication between two
//! regions of one local DynamoDB server: each `sync` copies what changed in
//! one region's table since the last sync to the other, item by item, and
//! settles an item changed in both by last-writer-wins (here: the second
//! region's write is taken as the later one), as Global Tables do per item.
//! A test controls the timing: no sync is a cut between the regions, and
//! `sync_where` delivers some items before others.

use std::collections::{HashMap, HashSet};

use hop::store::dynamo::sdk::Client;
use hop::store::dynamo::sdk::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};

type Item = HashMap<String, AttributeValue>;
type Key = (String, String);

pub struct Replicator {
    table: String,
    a: Client,
    b: Client,
    /// Each item as both regions held it after the last sync.
    last: HashMap<Key, Item>,
}

fn key(item: &Item) -> Key {
    let s = |k: &str| match item.get(k) {
        Some(AttributeValue::S(v)) => v.clone(),
        other => panic!("{k} = {other:?}"),
    };
    (s("pk"), s("sk"))
}

async fn scan(client: &Client, table: &str) -> HashMap<Key, Item> {
    let mut out = HashMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items() {
            out.insert(key(item), item.clone());
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return out,
        }
    }
}

async fn apply(client: &Client, table: &str, writes: Vec<(Key, Option<Item>)>) {
    for chunk in writes.chunks(25) {
        let mut requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|((pk, sk), item)| match item {
                Some(item) => WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item.clone()))
                            .build()
                            .unwrap(),
                    )
                    .build(),
                None => WriteRequest::builder()
                    .delete_request(
                        DeleteRequest::builder()
                            .key("pk", AttributeValue::S(pk.clone()))
                            .key("sk", AttributeValue::S(sk.clone()))
                            .build()
                            .unwrap(),
                    )
                    .build(),
            })
            .collect();
        while !requests.is_empty() {
            let out = client
                .batch_write_item()
                .request_items(table, requests)
                .send()
                .await
                .unwrap();
            requests = out
                .unprocessed_items
                .and_then(|mut m| m.remove(table))
                .unwrap_or_default();
        }
    }
}

impl Replicator {
    /// Between the same table in two regions, each seen through its
    /// region's client.
    pub fn new(table: &str, a: Client, b: Client) -> Replicator {
        Replicator {
            table: table.to_owned(),
            a,
            b,
            last: HashMap::new(),
        }
    }

    /// One round of replication both ways. Returns how many items were
    /// copied or deleted, and how many conflicts the second region won.
    pub async fn sync(&mut self) -> (usize, usize) {
        self.sync_where(|_| true).await
    }

    /// One round of replication of the items whose partition key `pick`
    /// takes; the others are held back for a later round (Global Tables
    /// replicate item by item, in no promised order).
    pub async fn sync_where(&mut self, pick: impl Fn(&str) -> bool) -> (usize, usize) {
        let in_a = scan(&self.a, &self.table).await;
        let in_b = scan(&self.b, &self.table).await;
        let keys: HashSet<&Key> = in_a
            .keys()
            .chain(in_b.keys())
            .chain(self.last.keys())
            .filter(|(pk, _)| pick(pk))
            .collect();
        let (mut to_a, mut to_b) = (Vec::new(), Vec::new());
        let mut settled = Vec::new();
        let mut conflicts = 0;
        for k in keys {
            let (a, b, last) = (in_a.get(k), in_b.get(k), self.last.get(k));
            if a == b {
                settled.push((k.clone(), a.cloned()));
                continue;
            }
            let winner = match (a != last, b != last) {
                (true, false) => {
                    to_b.push((k.clone(), a.cloned()));
                    a
                }
                (false, true) => {
                    to_a.push((k.clone(), b.cloned()));
                    b
                }
                _ => {
                    // Written in both since the last sync: the later wins.
                    conflicts += 1;
                    to_a.push((k.clone(), b.cloned()));
                    b
                }
            };
            settled.push((k.clone(), winner.cloned()));
        }
        let copied = to_a.len() + to_b.len();
        apply(&self.a, &self.table, to_a).await;
        apply(&self.b, &self.table, to_b).await;
        for (k, item) in settled {
            match item {
                Some(item) => self.last.insert(k, item),
                None => self.last.remove(&k),
            };
        }
        (copied, conflicts)
    }
}

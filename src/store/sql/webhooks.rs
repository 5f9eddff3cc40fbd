//! `WebhookStore` for the SQL stores, expanded inside `sql_store!` (so it
//! shares the row decoders). Fan-out and claims take rows with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL, so workers sharing a database
//! take disjoint rows; SQLite has one writer at a time anyway.

/// The endpoint columns written by insert and update, in bind order.
macro_rules! sql_webhooks {
    ($store:ty) => {
        use $crate::domain::webhook::{EventType, LinkEvent, OUTBOX_CLICKS, OUTBOX_LINK};
        use $crate::store::webhooks::{
            Attempt, ClickKey, Endpoint, FanOut, LinkFacts, Message, MessageState, Outcome,
            OutboxEntry, Planner, ReplaySelection, WebhookStore, click_keys_of,
        };

        fn endpoint_from_row(row: &DbRow) -> Result<Endpoint, StoreError> {
            let events: String = row.try_get("events")?;
            let events: Vec<EventType> = serde_json::from_str(&events)
                .map_err(|e| StoreError::Corrupt(format!("webhook events: {e}")))?;
            let links: Option<String> = row.try_get("scope_links")?;
            Ok(Endpoint {
                id: row.try_get("id")?,
                owner: row.try_get::<Option<i64>, _>("owner_key")?.map(KeyId),
                instance_wide: row.try_get("instance_wide")?,
                url: row.try_get("url")?,
                description: row.try_get("description")?,
                events,
                scope_tag: row.try_get("scope_tag")?,
                scope_links: links
                    .map(|l| serde_json::from_str(&l))
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(format!("webhook scope: {e}")))?,
                secret: row.try_get("secret")?,
                previous_secret: row.try_get("previous_secret")?,
                previous_until: row.try_get("previous_until")?,
                enabled: row.try_get("enabled")?,
                disabled_reason: row.try_get("disabled_reason")?,
                failing_since: row.try_get("failing_since")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        fn message_from_row(row: &DbRow) -> Result<Message, StoreError> {
            let kind: String = row.try_get("event_type")?;
            let state: String = row.try_get("state")?;
            Ok(Message {
                endpoint_id: row.try_get("endpoint_id")?,
                id: row.try_get("id")?,
                event_type: EventType::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("webhook event type {kind}")))?,
                at: row.try_get("at")?,
                events: row.try_get::<i32, _>("events")? as u32,
                body: row.try_get("body")?,
                state: MessageState::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("webhook state {state}")))?,
                attempts: row.try_get::<i32, _>("attempts")? as u32,
                retry_until: row.try_get("retry_until")?,
                next_at: row.try_get("next_at")?,
                last_status: row
                    .try_get::<Option<i32>, _>("last_status")?
                    .map(|s| s as u16),
                last_error: row.try_get("last_error")?,
                created_at: row.try_get("created_at")?,
                finished_at: row.try_get("finished_at")?,
            })
        }

        fn attempt_from_row(row: &DbRow) -> Result<Attempt, StoreError> {
            Ok(Attempt {
                id: row.try_get("id")?,
                endpoint_id: row.try_get("endpoint_id")?,
                message_id: row.try_get("message_id")?,
                at: row.try_get("at")?,
                attempt: row.try_get::<i32, _>("attempt")? as u32,
                status: row.try_get::<Option<i32>, _>("status")?.map(|s| s as u16),
                latency_ms: row.try_get::<i64, _>("latency_ms")? as u64,
                error: row.try_get("error")?,
                response: row.try_get("response")?,
            })
        }

        /// How long a fan-out holds the outbox rows it took (then another
        /// worker may take them: a dead worker's rows wait this long).
        const FAN_OUT_CLAIM_MS: i64 = 10_000;
        /// About how many clicks one fan-out reads and plans (memory).
        const FAN_OUT_CLICKS: i64 = 20_000;

        /// An endpoint's columns, bound in this order by [`bind_endpoint`].
        const ENDPOINT_INSERT: &str = "INSERT INTO webhook_endpoints (id, owner_key,
            instance_wide, url, description, events, wants_clicks, scope_tag, scope_links,
            secret, previous_secret, previous_until, enabled, disabled_reason, failing_since,
            created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";
        /// The same binds; the owner, scope kind and creation time stay (the
        /// `WHERE` names their parameters too: SQLite binds `$n` by name,
        /// and a bind to a name the statement lacks is an error).
        const ENDPOINT_UPDATE: &str = "UPDATE webhook_endpoints SET url = $4,
            description = $5, events = $6, wants_clicks = $7, scope_tag = $8, scope_links = $9,
            secret = $10, previous_secret = $11, previous_until = $12, enabled = $13,
            disabled_reason = $14, failing_since = $15, updated_at = $17
            WHERE id = $1 AND ($2 IS NULL OR $2 IS NOT NULL) AND ($3 OR NOT $3)
                AND ($16 IS NULL OR $16 IS NOT NULL)";

        fn bind_endpoint<'q>(q: DbQuery<'q>, e: &'q Endpoint) -> DbQuery<'q> {
            q.bind(&e.id)
                .bind(e.owner.map(|k| k.0))
                .bind(e.instance_wide)
                .bind(&e.url)
                .bind(&e.description)
                .bind(serde_json::to_string(&e.events).unwrap_or_else(|_| "[]".into()))
                .bind(e.wants(EventType::Click))
                .bind(&e.scope_tag)
                .bind(e.scope_links.as_ref().and_then(|l| serde_json::to_string(l).ok()))
                .bind(&e.secret)
                .bind(&e.previous_secret)
                .bind(e.previous_until)
                .bind(e.enabled)
                .bind(&e.disabled_reason)
                .bind(e.failing_since)
                .bind(e.created_at)
                .bind(e.updated_at)
        }

        /// Writes a link event into the outbox, in the caller's transaction.
        async fn outbox_link_event(
            conn: &mut <<$store as SqlDialect>::Db as sqlx::Database>::Connection,
            event: &LinkEvent,
        ) -> Result<(), StoreError> {
            sqlx::query("INSERT INTO webhook_outbox (kind, created_at, body) VALUES ($1, $2, $3)")
                .bind(OUTBOX_LINK)
                .bind(event.at)
                .bind(event.to_json().into_bytes())
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        /// The stored clicks (that still exist) of these keys, each with
        /// its link.
        async fn clicks_with_links(
            conn: &mut <<$store as SqlDialect>::Db as sqlx::Database>::Connection,
            keys: &[ClickKey],
            links: &mut HashMap<LinkId, std::sync::Arc<LinkFacts>>,
        ) -> Result<Vec<(EnrichedClick, std::sync::Arc<LinkFacts>)>, StoreError> {
            let mut out = Vec::with_capacity(keys.len());
            // Small chunks: sqlx looks each parameter up by name among all of
            // the statement's, so a statement's binds cost the square of its
            // parameters (900 of them took 13% of a fan-out's time).
            for chunk in keys.chunks(64) {
                let tuples: Vec<String> = (0..chunk.len())
                    .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
                    .collect();
                let sql = format!(
                    "SELECT * FROM clicks WHERE (link_id, at, event_id) IN ({}) ORDER BY at",
                    tuples.join(", ")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (link, at, id) in chunk {
                    q = q.bind(link.0).bind(*at).bind(id.as_bytes().to_vec());
                }
                for row in q.fetch_all(&mut *conn).await? {
                    let click = click_from_row(&row)?;
                    let facts = match links.get(&click.link_id) {
                        Some(f) => f.clone(),
                        None => {
                            let Some(row) = sqlx::query("SELECT * FROM links WHERE id = $1")
                                .bind(click.link_id.0)
                                .fetch_optional(&mut *conn)
                                .await?
                            else {
                                continue;
                            };
                            let link = link_from_row(&row)?;
                            let facts = std::sync::Arc::new(LinkFacts {
                                slug: link.slug.to_string(),
                                owner: link.owner,
                                tags: link.tags,
                            });
                            links.insert(click.link_id, facts.clone());
                            facts
                        }
                    };
                    out.push((click, facts));
                }
            }
            Ok(out)
        }

        #[async_trait]
        impl WebhookStore for $store {
            fn has_webhooks(&self) -> bool {
                true
            }

            async fn insert_endpoint(&self, e: &Endpoint) -> Result<(), StoreError> {
                bind_endpoint(sqlx::query(ENDPOINT_INSERT), e)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn list_endpoints(
                &self,
                owner: Option<KeyId>,
            ) -> Result<Vec<Endpoint>, StoreError> {
                let rows = sqlx::query(
                    "SELECT * FROM webhook_endpoints WHERE ($1 IS NULL OR owner_key = $1)
                     ORDER BY created_at, id",
                )
                .bind(owner.map(|k| k.0))
                .fetch_all(self.readers())
                .await?;
                rows.iter().map(endpoint_from_row).collect()
            }

            async fn endpoint(&self, id: &str) -> Result<Option<Endpoint>, StoreError> {
                let row = sqlx::query("SELECT * FROM webhook_endpoints WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.readers())
                    .await?;
                row.as_ref().map(endpoint_from_row).transpose()
            }

            async fn update_endpoint(&self, e: &Endpoint) -> Result<bool, StoreError> {
                let n = bind_endpoint(sqlx::query(ENDPOINT_UPDATE), e)
                .execute(self.writer())
                .await?
                .rows_affected();
                Ok(n == 1)
            }

            async fn delete_endpoint(&self, id: &str) -> Result<bool, StoreError> {
                let mut tx = self.writer().begin_with(<$store>::BEGIN_WRITE).await?;
                let n = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                for statement in [
                    "DELETE FROM webhook_messages WHERE endpoint_id = $1",
                    "DELETE FROM webhook_attempts WHERE endpoint_id = $1",
                ] {
                    sqlx::query(statement).bind(id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(n == 1)
            }

            async fn fan_out(
                &self,
                worker: &str,
                now: i64,
                limit: usize,
                plan: Planner<'_>,
            ) -> Result<usize, StoreError> {
                // 1. Take rows: the oldest free ones, as many as hold about
                // `FAN_OUT_CLICKS` clicks (at least one), in a short write;
                // nobody else's until the take runs out. Two workers that
                // pick the same rows: the second's update finds them taken.
                let free: Vec<(i64, i64)> = sqlx::query_as(
                    "SELECT id, CAST(length(body) AS BIGINT) FROM webhook_outbox
                     WHERE claimed_until IS NULL OR claimed_until < $1
                     ORDER BY id LIMIT $2",
                )
                .bind(now)
                .bind(limit as i64)
                .fetch_all(self.readers())
                .await?;
                let mut take = Vec::new();
                let mut clicks = 0;
                for (id, len) in free {
                    if !take.is_empty() && clicks + len / 32 > FAN_OUT_CLICKS {
                        break;
                    }
                    clicks += len / 32;
                    take.push(id);
                }
                if take.is_empty() {
                    return Ok(0);
                }
                let list: Vec<String> = (4..take.len() + 4).map(|i| format!("${i}")).collect();
                let mut tx = self.writer().begin_with(<$store>::BEGIN_WRITE).await?;
                let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE webhook_outbox SET claimed_by = $1, claimed_until = $2
                     WHERE (claimed_until IS NULL OR claimed_until < $3) AND id IN ({})
                     RETURNING id, kind, body",
                    list.join(", ")
                )))
                .bind(worker)
                .bind(now + FAN_OUT_CLAIM_MS)
                .bind(now);
                for id in &take {
                    q = q.bind(*id);
                }
                let rows = q.fetch_all(&mut *tx).await?;
                tx.commit().await?;
                if rows.is_empty() {
                    return Ok(0);
                }
                // 2. Read what they name and plan, holding no write lock
                // (SQLite's is the click writer's too).
                let mut conn = self.readers().acquire().await?;
                // A revoked key's endpoints hear of nothing more.
                let endpoints: Vec<Endpoint> = sqlx::query(
                    "SELECT e.* FROM webhook_endpoints e LEFT JOIN api_keys k ON k.id = e.owner_key
                     WHERE e.owner_key IS NULL OR k.revoked_at IS NULL",
                )
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(endpoint_from_row)
                    .collect::<Result<_, _>>()?;
                let mut rows: Vec<(i64, String, Vec<u8>)> = rows
                    .iter()
                    .map(|r| Ok((r.try_get("id")?, r.try_get("kind")?, r.try_get("body")?)))
                    .collect::<Result<_, StoreError>>()?;
                rows.sort_by_key(|r| r.0);
                let mut entries = Vec::with_capacity(rows.len());
                let mut links = HashMap::new();
                for (_, kind, body) in rows.iter().filter(|_| !endpoints.is_empty()) {
                    match kind.as_str() {
                        OUTBOX_LINK => entries.push(OutboxEntry::Link(
                            serde_json::from_slice(body)
                                .map_err(|e| StoreError::Corrupt(format!("link event: {e}")))?,
                        )),
                        OUTBOX_CLICKS => {
                            let keys = click_keys_of(body)?;
                            entries.push(OutboxEntry::Clicks(
                                clicks_with_links(&mut conn, &keys, &mut links).await?,
                            ))
                        }
                        other => {
                            return Err(StoreError::Corrupt(format!("outbox kind {other}")));
                        }
                    }
                }
                drop(conn);
                let messages = plan(FanOut {
                    endpoints: &endpoints,
                    entries: &entries,
                });
                // 3. Store the messages and delete the rows, together; only
                // if every row is still ours (a claim that ran out while
                // this was slow may have gone to another worker, whose
                // messages then stand instead).
                let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
                let mut tx = self.writer().begin_with(<$store>::BEGIN_WRITE).await?;
                let mut deleted = 0;
                for chunk in ids.chunks(500) {
                    let list: Vec<String> = (2..=chunk.len() + 1).map(|i| format!("${i}")).collect();
                    let sql = format!(
                        "DELETE FROM webhook_outbox WHERE claimed_by = $1 AND id IN ({})",
                        list.join(", ")
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(worker);
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    deleted += q.execute(&mut *tx).await?.rows_affected();
                }
                if deleted != ids.len() as u64 {
                    tx.rollback().await?;
                    return Ok(0);
                }
                for m in &messages {
                    sqlx::query(
                        "INSERT INTO webhook_messages (endpoint_id, id, event_type, at, events,
                             body, state, attempts, retry_until, next_at, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8, $8)
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(&m.endpoint_id)
                    .bind(&m.id)
                    .bind(m.event_type.as_str())
                    .bind(m.at)
                    .bind(m.events as i32)
                    .bind(&m.body)
                    .bind(m.retry_until)
                    .bind(m.created_at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(ids.len())
            }

            async fn claim_messages(
                &self,
                worker: &str,
                now: i64,
                lease_until: i64,
                busy: &[String],
                per_endpoint: usize,
                limit: usize,
            ) -> Result<Vec<Message>, StoreError> {
                // Which endpoints have something due, read first: with
                // nothing to send, no write transaction (SQLite's write lock
                // is the click writer's too).
                let enabled: Vec<String> = sqlx::query_scalar(
                    "SELECT e.id FROM webhook_endpoints e LEFT JOIN api_keys k ON k.id = e.owner_key
                     WHERE e.enabled AND (e.owner_key IS NULL OR k.revoked_at IS NULL)
                     ORDER BY e.id",
                )
                .fetch_all(self.readers())
                .await?;
                let mut endpoints = Vec::new();
                for e in enabled.into_iter().filter(|e| !busy.contains(e)) {
                    let due: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM webhook_messages
                             WHERE endpoint_id = $1 AND state = 'pending' AND next_at <= $2
                                 AND (lease_until IS NULL OR lease_until <= $2))",
                    )
                    .bind(&e)
                    .bind(now)
                    .fetch_one(self.readers())
                    .await?;
                    if due {
                        endpoints.push(e);
                    }
                }
                if endpoints.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self.writer().begin_with(<$store>::BEGIN_WRITE).await?;
                let select = format!(
                    "SELECT id FROM webhook_messages
                     WHERE endpoint_id = $1 AND state = 'pending' AND next_at <= $2
                         AND (lease_until IS NULL OR lease_until <= $2)
                     ORDER BY next_at LIMIT $3{}",
                    <$store>::SKIP_LOCKED
                );
                let mut out = Vec::new();
                for endpoint in endpoints {
                    if out.len() >= limit {
                        break;
                    }
                    let take = per_endpoint.min(limit - out.len());
                    let ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(select.clone()))
                        .bind(&endpoint)
                        .bind(now)
                        .bind(take as i64)
                        .fetch_all(&mut *tx)
                        .await?;
                    for id in ids {
                        let row = sqlx::query(
                            "UPDATE webhook_messages
                             SET lease_until = $3, leased_by = $4, attempts = attempts + 1
                             WHERE endpoint_id = $1 AND id = $2 RETURNING *",
                        )
                        .bind(&endpoint)
                        .bind(&id)
                        .bind(lease_until)
                        .bind(worker)
                        .fetch_one(&mut *tx)
                        .await?;
                        out.push(message_from_row(&row)?);
                    }
                }
                tx.commit().await?;
                Ok(out)
            }

            async fn record_attempt(
                &self,
                a: &Attempt,
                outcome: Outcome,
                disable_after: i64,
                reason: &str,
            ) -> Result<(), StoreError> {
                let mut tx = self.writer().begin_with(<$store>::BEGIN_WRITE).await?;
                sqlx::query(
                    "INSERT INTO webhook_attempts (endpoint_id, message_id, at, attempt, status,
                         latency_ms, error, response)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&a.endpoint_id)
                .bind(&a.message_id)
                .bind(a.at)
                .bind(a.attempt as i32)
                .bind(a.status.map(i32::from))
                .bind(a.latency_ms as i64)
                .bind(&a.error)
                .bind(&a.response)
                .execute(&mut *tx)
                .await?;
                let (state, next_at, finished) = match outcome {
                    Outcome::Delivered => (MessageState::Delivered, None, Some(a.at)),
                    Outcome::Retry(t) => (MessageState::Pending, Some(t), None),
                    Outcome::Dead => (MessageState::Dead, None, Some(a.at)),
                };
                sqlx::query(
                    "UPDATE webhook_messages SET state = $3, next_at = COALESCE($4, next_at),
                         finished_at = $5, lease_until = NULL, leased_by = NULL, last_status = $6, last_error = $7
                     WHERE endpoint_id = $1 AND id = $2 AND state = 'pending'",
                )
                .bind(&a.endpoint_id)
                .bind(&a.message_id)
                .bind(state.as_str())
                .bind(next_at)
                .bind(finished)
                .bind(a.status.map(i32::from))
                .bind(&a.error)
                .execute(&mut *tx)
                .await?;
                if outcome == Outcome::Delivered {
                    sqlx::query(
                        "UPDATE webhook_endpoints SET failing_since = NULL
                         WHERE id = $1 AND failing_since IS NOT NULL",
                    )
                    .bind(&a.endpoint_id)
                    .execute(&mut *tx)
                    .await?;
                } else {
                    sqlx::query(
                        "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2)
                         WHERE id = $1",
                    )
                    .bind(&a.endpoint_id)
                    .bind(a.at)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE webhook_endpoints SET enabled = $4, disabled_reason = $3,
                             updated_at = $2
                         WHERE id = $1 AND enabled AND failing_since <= $2 - $5",
                    )
                    .bind(&a.endpoint_id)
                    .bind(a.at)
                    .bind(reason)
                    .bind(false)
                    .bind(disable_after)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_messages(
                &self,
                endpoint: &str,
                state: Option<MessageState>,
                before: Option<(i64, &str)>,
                limit: usize,
            ) -> Result<Vec<Message>, StoreError> {
                let rows = sqlx::query(
                    "SELECT * FROM webhook_messages
                     WHERE endpoint_id = $1 AND ($2 IS NULL OR state = $2)
                         AND ($3 IS NULL OR at < $3 OR (at = $3 AND id < $4))
                     ORDER BY at DESC, id DESC LIMIT $5",
                )
                .bind(endpoint)
                .bind(state.map(MessageState::as_str))
                .bind(before.map(|b| b.0))
                .bind(before.map(|b| b.1.to_owned()).unwrap_or_default())
                .bind(limit as i64)
                .fetch_all(self.readers())
                .await?;
                rows.iter().map(message_from_row).collect()
            }

            async fn list_attempts(
                &self,
                endpoint: &str,
                message: Option<&str>,
                before: Option<i64>,
                limit: usize,
            ) -> Result<Vec<Attempt>, StoreError> {
                let rows = sqlx::query(
                    "SELECT * FROM webhook_attempts
                     WHERE endpoint_id = $1 AND ($2 IS NULL OR message_id = $2)
                         AND ($3 IS NULL OR id < $3)
                     ORDER BY id DESC LIMIT $4",
                )
                .bind(endpoint)
                .bind(message)
                .bind(before)
                .bind(limit as i64)
                .fetch_all(self.readers())
                .await?;
                rows.iter().map(attempt_from_row).collect()
            }

            async fn replay_messages(
                &self,
                endpoint: &str,
                which: &ReplaySelection,
                now: i64,
                retry_until: i64,
            ) -> Result<u64, StoreError> {
                let (one, from, to) = match which {
                    ReplaySelection::One(id) => (Some(id.as_str()), None, None),
                    ReplaySelection::Range { from, to } => (None, Some(*from), Some(*to)),
                };
                let n = sqlx::query(
                    "UPDATE webhook_messages SET state = 'pending', next_at = $2,
                         retry_until = $3, finished_at = NULL, lease_until = NULL, leased_by = NULL
                     WHERE endpoint_id = $1 AND ($4 IS NULL OR id = $4)
                         AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6)",
                )
                .bind(endpoint)
                .bind(now)
                .bind(retry_until)
                .bind(one)
                .bind(from)
                .bind(to)
                .execute(self.writer())
                .await?
                .rows_affected();
                Ok(n)
            }

            async fn prune_webhooks(&self, before: i64) -> Result<u64, StoreError> {
                let mut n = sqlx::query(
                    "DELETE FROM webhook_messages WHERE state <> 'pending' AND finished_at < $1",
                )
                .bind(before)
                .execute(self.writer())
                .await?
                .rows_affected();
                n += sqlx::query("DELETE FROM webhook_attempts WHERE at < $1")
                    .bind(before)
                    .execute(self.writer())
                    .await?
                    .rows_affected();
                Ok(n)
            }

            async fn webhook_backlog(&self) -> Result<(u64, u64, u64), StoreError> {
                let (outbox, pending, dead): (i64, i64, i64) = sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM webhook_outbox),
                         (SELECT COUNT(*) FROM webhook_messages WHERE state = 'pending'),
                         (SELECT COUNT(*) FROM webhook_messages WHERE state = 'dead')",
                )
                .fetch_one(self.readers())
                .await?;
                Ok((outbox as u64, pending as u64, dead as u64))
            }
        }
    };
}

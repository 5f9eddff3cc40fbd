//! What the cluster shares to hash alike: the daily visitor salts
//! (`hop:salt:{day}`, set once with `NX`, expiring after three days) and the
//! secret for pseudonymous rate-limit keys (`hop:secret`). Redis holds them
//! keyed with the cluster key, so reading Redis does not give them away.

use super::redis::Redis;
use crate::domain::ClickEvent;
use crate::store::Resolution;

impl Redis {
    /// The cluster's secret for pseudonymous keys (`hop:secret`, made once
    /// with `NX` by whichever node asks first, never expiring).
    pub async fn shared_secret(&self) -> redis::RedisResult<[u8; 32]> {
        let mut fresh = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut fresh);
        let mut conn = self.conn();
        let (secret,): (String,) = self.mark(
            redis::pipe()
                .cmd("SET")
                .arg("hop:secret")
                .arg(hex::encode(fresh))
                .arg("NX")
                .ignore()
                .get("hop:secret")
                .query_async::<(String,)>(&mut conn)
                .await,
        )?;
        let bytes = hex::decode(secret).unwrap_or_default();
        if bytes.len() != 32 {
            return Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "hop:secret is not 32 hex bytes",
            )));
        }
        // What Redis holds is not the secret: it is keyed with the cluster
        // key, so reading Redis does not give it away.
        Ok(self.seal.derive("hop:secret", &bytes))
    }

    /// Loads the cluster's salt for each UTC day these clicks fall on.
    pub async fn share_salts(
        &self,
        salts: &crate::clicks::enrich::DailySalts,
        events: &[ClickEvent],
    ) -> redis::RedisResult<()> {
        let mut days: Vec<i64> = events.iter().map(|e| Resolution::Day.floor(e.at)).collect();
        days.sort_unstable();
        days.dedup();
        for day in days {
            if salts.has(day) {
                continue;
            }
            let key = format!("hop:salt:{day}");
            let mut fresh = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut fresh);
            let mut conn = self.conn();
            let (salt,): (String,) = self.mark(
                redis::pipe()
                    .cmd("SET")
                    .arg(&key)
                    .arg(hex::encode(fresh))
                    .arg("NX")
                    .arg("EX")
                    .arg(3 * 86_400)
                    .ignore()
                    .get(&key)
                    .query_async::<(String,)>(&mut conn)
                    .await,
            )?;
            let bytes = hex::decode(salt).unwrap_or_default();
            if bytes.len() == 32 {
                // Keyed with the cluster key: Redis alone does not give
                // away the salt (nor, so, let visitor hashes be reversed).
                salts.set(day, self.seal.derive(&key, &bytes));
            }
        }
        Ok(())
    }
}

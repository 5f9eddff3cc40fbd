//! Turns a `ClickEvent` (raw IP and headers, in memory only) into an
//! `EnrichedClick` (what is stored): user agent class, geo, referrer host and
//! a salted visitor hash. The raw IP goes no further than this module (the
//! click log calls [`Enricher::locate`] before it writes a click, so the
//! address never reaches its disk).

use std::collections::HashMap;
use std::net::IpAddr;

use parking_lot::Mutex;
use rand::RngCore;

use super::geo::GeoDb;
use super::user_agent::UserAgentParser;
use crate::domain::{ClickEvent, EnrichedClick, LinkId, Located};
use crate::store::Resolution;

/// Random salts per UTC day, kept in memory only and dropped two days on, so
/// visitor hashes cannot be linked across days or recomputed later from data.
#[derive(Default)]
pub struct DailySalts {
    salts: Mutex<HashMap<i64, [u8; 32]>>,
}

impl DailySalts {
    /// Uses `salt` for the UTC day of `at_ms` (a salt shared by every
    /// worker of a cluster, so their visitor hashes agree).
    pub fn set(&self, at_ms: i64, salt: [u8; 32]) {
        self.salts.lock().insert(Resolution::Day.floor(at_ms), salt);
    }

    pub fn has(&self, at_ms: i64) -> bool {
        self.salts
            .lock()
            .contains_key(&Resolution::Day.floor(at_ms))
    }

    pub fn salt_for(&self, at_ms: i64) -> [u8; 32] {
        let day = Resolution::Day.floor(at_ms);
        let mut salts = self.salts.lock();
        if let Some(s) = salts.get(&day) {
            return *s;
        }
        salts.retain(|d, _| *d >= day - 2 * Resolution::Day.grain_ms());
        let mut salt = [0u8; 32];
        rand::rng().fill_bytes(&mut salt);
        salts.insert(day, salt);
        salt
    }
}

/// A visitor's hash for one day: SipHash-1-3 (a keyed pseudo-random
/// function made for short inputs) keyed with the day's salt, of (link,
/// address, user agent). Without the salt, which is never stored, a hash
/// cannot be tied to an address. SipHash rather than SHA-256 (hop's earlier
/// choice): a tenth of the cost on the redirect, and a PRF is what a keyed
/// hash of secret-salted input needs to be.
pub fn visitor_hash(salt: &[u8; 32], link: LinkId, ip: IpAddr, ua: &str) -> i64 {
    use std::hash::Hasher;
    let key: &[u8; 16] = salt[..16].try_into().unwrap_or(&[0; 16]);
    let mut h = siphasher::sip::SipHasher13::new_with_key(key);
    h.write(&link.0.to_be_bytes());
    match ip {
        IpAddr::V4(v4) => h.write(&v4.octets()),
        IpAddr::V6(v6) => h.write(&v6.octets()),
    }
    h.write_u8(0);
    h.write(ua.as_bytes());
    h.finish() as i64
}

/// Host of a referrer URL, lower case and without a leading `www.`.
pub fn referrer_host(referrer: &str) -> Option<String> {
    let url = url::Url::parse(referrer).ok()?;
    if !matches!(url.scheme(), "http" | "https" | "android-app") {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    Some(host.strip_prefix("www.").map(str::to_owned).unwrap_or(host))
}

pub struct Enricher {
    user_agents: UserAgentParser,
    /// What a click whose user agent was withheld (DNT/GPC, `--no-track-ua`)
    /// counts as: unknown, and a human (a missing user agent otherwise
    /// marks a bot).
    withheld_ua: std::sync::Arc<super::user_agent::UserAgentInfo>,
    geo: Option<GeoDb>,
    salts: DailySalts,
}

impl Enricher {
    pub fn new(geo: Option<GeoDb>) -> Enricher {
        Enricher {
            user_agents: UserAgentParser::default(),
            withheld_ua: std::sync::Arc::new(super::user_agent::UserAgentInfo {
                browser: "unknown".into(),
                os: "unknown".into(),
                device: crate::domain::DeviceType::Other,
                bot: false,
            }),
            geo,
            salts: DailySalts::default(),
        }
    }

    pub fn salts(&self) -> &DailySalts {
        &self.salts
    }

    /// The user agent's class (browser, OS, device), as clicks get it.
    pub fn user_agent(&self, ua: Option<&str>) -> std::sync::Arc<super::user_agent::UserAgentInfo> {
        self.user_agents.parse(ua)
    }

    /// The address's country and city, as clicks get them.
    pub fn location(&self, ip: IpAddr) -> super::geo::Location {
        self.geo.as_ref().map(|g| g.lookup(ip)).unwrap_or_default()
    }

    /// What the address gives: location, and the visitor hash of the day
    /// of `at` (an unknown `ua` hashes as empty).
    pub fn locate(&self, link: LinkId, ip: IpAddr, ua: &str, at: i64) -> Located {
        self.locate_at(link, ip, ua, at, None)
    }

    /// [`Enricher::locate`], with the address's location when it is known
    /// already (`known`: looked up for a rule on the same request).
    pub fn locate_at(
        &self,
        link: LinkId,
        ip: IpAddr,
        ua: &str,
        at: i64,
        known: Option<&super::geo::Location>,
    ) -> Located {
        let location = match known {
            Some(l) => l.clone(),
            None => self.location(ip),
        };
        let salt = self.salts.salt_for(at);
        Located {
            visitor: visitor_hash(&salt, link, ip, ua),
            country: location.country,
            city: location.city,
        }
    }

    pub fn enrich(&self, ev: &ClickEvent) -> EnrichedClick {
        let ua = if ev.withheld {
            self.withheld_ua.clone()
        } else {
            self.user_agents.parse(ev.user_agent.as_deref())
        };
        let located = match &ev.located {
            Some(l) => l.clone(),
            None => self.locate(
                ev.link_id,
                ev.ip,
                ev.user_agent.as_deref().unwrap_or(""),
                ev.at,
            ),
        };
        EnrichedClick {
            event_id: ev.event_id,
            link_id: ev.link_id,
            at: ev.at,
            bot: ua.bot,
            country: located.country,
            city: located.city,
            browser: ua.browser.clone(),
            os: ua.os.clone(),
            device: ua.device,
            referrer_host: ev.referrer.as_deref().and_then(referrer_host),
            utm: ev.utm.clone(),
            visitor: located.visitor,
            region: ev.region.clone(),
            route: ev.route.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrer_hosts() {
        assert_eq!(
            referrer_host("https://www.Google.com/search?q=x").as_deref(),
            Some("google.com")
        );
        assert_eq!(
            referrer_host("http://news.ycombinator.com/").as_deref(),
            Some("news.ycombinator.com")
        );
        assert_eq!(referrer_host("not a url"), None);
        assert_eq!(referrer_host("javascript:alert(1)"), None);
    }

    #[test]
    fn visitor_hash_depends_on_every_part() {
        let s1 = [1; 32];
        let ip: IpAddr = "81.2.69.142".parse().unwrap();
        let base = visitor_hash(&s1, LinkId(1), ip, "ua");
        assert_eq!(base, visitor_hash(&s1, LinkId(1), ip, "ua"));
        assert_ne!(base, visitor_hash(&[2; 32], LinkId(1), ip, "ua"));
        assert_ne!(base, visitor_hash(&s1, LinkId(2), ip, "ua"));
        assert_ne!(
            base,
            visitor_hash(&s1, LinkId(1), "81.2.69.143".parse().unwrap(), "ua")
        );
        assert_ne!(base, visitor_hash(&s1, LinkId(1), ip, "ub"));
    }

    #[test]
    fn a_known_location_is_used_as_it_is() {
        let e = Enricher::new(None);
        let ip: IpAddr = "81.2.69.142".parse().unwrap();
        let known = super::super::geo::Location {
            country: Some("DE".into()),
            city: Some("Wien".into()),
        };
        let got = e.locate_at(LinkId(1), ip, "ua", 10, Some(&known));
        assert_eq!(
            (got.country.as_deref(), got.city.as_deref()),
            (Some("DE"), Some("Wien"))
        );
        assert_eq!(got.visitor, e.locate(LinkId(1), ip, "ua", 10).visitor);
        assert_eq!(
            e.locate(LinkId(1), ip, "ua", 10).country,
            None,
            "no database here"
        );
    }

    #[test]
    fn salts_rotate_daily() {
        let salts = DailySalts::default();
        let day = 86_400_000;
        assert_eq!(salts.salt_for(10), salts.salt_for(day - 1));
        assert_ne!(salts.salt_for(10), salts.salt_for(day));
        // Old salts are forgotten: the same day later gets a fresh salt.
        let first = salts.salt_for(10);
        salts.salt_for(10 * day);
        assert_ne!(first, salts.salt_for(10));
    }
}

//! Where a short link may point when the operator runs hop with
//! `--refuse-private-targets` (anti-SSRF).
//!
//! This module owns one decision: is a link target's host on the public
//! internet? It answers it in three layers, from cheapest to dearest:
//!
//! * [`is_forbidden_ip`]: an address that the IANA IPv4 and IPv6
//!   Special-Purpose Address Registries (RFC 6890 and its updates) do not
//!   call globally reachable, plus multicast and a few anycast
//!   infrastructure blocks (see the tables for each row and why). IPv6
//!   forms that carry an IPv4 address (v4-mapped, NAT64 well-known prefix,
//!   6to4) are judged by that IPv4 address.
//! * [`is_forbidden_name`]: names refused without asking DNS: `localhost`
//!   and `*.localhost`, the special-use domain names that never resolve
//!   publicly (`.local`, `.test`, `.invalid`, `.onion`, `home.arpa`, ...),
//!   `.internal` (cloud metadata: `metadata.google.internal`), dotless names
//!   (`metadata`, `instance-data`) and malformed hosts.
//! * [`resolve_public`]: everything else is resolved, and every address it
//!   resolves to must pass [`is_forbidden_ip`]. It fails closed (no answer,
//!   an error or a timeout is a refusal) and runs at most as many lookups at
//!   once as the semaphore has permits, counting lookups whose caller has
//!   already given up, so a flood of slow names cannot pile up in the
//!   blocking pool.
//!
//! hop runs the check when a link is created or edited, and again at
//! redirect time through [`TargetGuard`] (verdicts cached for a minute), so
//! a name that later starts resolving to a private address (DNS rebinding,
//! or a link stored before the option was on) stops redirecting. What no
//! redirector can do: the browser that follows the redirect resolves the
//! name again, later, and DNS may answer differently then. The check stops
//! the plain cases, the address forms, and names that stay private.
//!
//! Crate choice: no crate on crates.io was found that is maintained, small,
//! and covers the registry *and* the embedded-IPv4 forms. `ip_rfc` (0.1.0,
//! one release, "passively-maintained") copies an old draft of std's
//! `is_global`; `ip_network`'s `is_global` only knows loopback, link/site
//! local, ULA and documentation and calls global multicast and NAT64 global;
//! `iprfc` is a catalogue of RFC blocks, not a reachability decision (2002::/16
//! and 64:ff9b::/96 are in it whatever they embed; its 2001::/16 row swallowed
//! real address space until 0.2.2); `cidr-utils` has no registry; std's
//! `is_global` is nightly-only and judges 64:ff9b::/96 as global whatever it
//! embeds. So the registry is a table here, as `ipnet` constants (hop already
//! depends on `ipnet`).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};
use tokio::sync::Semaphore;
use tokio::time::Instant;

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(segments: [u16; 8], prefix: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)
}

/// IPv4 blocks refused, each with the registry entry it comes from.
///
/// Every row of the IANA IPv4 Special-Purpose Address Registry whose
/// "Globally Reachable" is False or N/A is here. Four blocks the registry
/// calls globally reachable are refused too, on purpose: they are anycast
/// infrastructure whose nearest instance is often inside the operator's own
/// network (a PCP server is the home/CPE router; AS112 nodes are run inside
/// enterprise networks), and no web page is ever served from them, so
/// refusing costs nothing. Multicast is not in that registry (it has its
/// own) and is refused because it is not a unicast host at all.
const V4_REFUSED: &[(Ipv4Net, &str)] = &[
    (
        v4(0, 0, 0, 0, 8),
        "\"this network\" (RFC 791); 0.0.0.0 reaches localhost on Linux",
    ),
    (v4(10, 0, 0, 0, 8), "private-use (RFC 1918)"),
    (
        v4(100, 64, 0, 0, 10),
        "shared address space / CGN (RFC 6598)",
    ),
    (v4(127, 0, 0, 0, 8), "loopback (RFC 1122)"),
    (
        v4(169, 254, 0, 0, 16),
        "link-local (RFC 3927); cloud metadata 169.254.169.254",
    ),
    (v4(172, 16, 0, 0, 12), "private-use (RFC 1918)"),
    // Includes 192.0.0.0/29 DS-Lite, 192.0.0.8 dummy, 192.0.0.170/171 NAT64
    // discovery (not global) and 192.0.0.9 PCP / 192.0.0.10 TURN anycast
    // (global, refused: the PCP server answering there is the local router).
    (v4(192, 0, 0, 0, 24), "IETF protocol assignments (RFC 6890)"),
    (v4(192, 0, 2, 0, 24), "documentation TEST-NET-1 (RFC 5737)"),
    (
        v4(192, 31, 196, 0, 24),
        "AS112-v4 (RFC 7535); global, refused: anycast DNS sink",
    ),
    (
        v4(192, 52, 193, 0, 24),
        "AMT (RFC 7450); global, refused: multicast relay anycast",
    ),
    // Includes 192.88.99.2/32, the 6a44 relay anycast address (RFC 6751).
    (
        v4(192, 88, 99, 0, 24),
        "deprecated 6to4 relay anycast (RFC 7526)",
    ),
    (v4(192, 168, 0, 0, 16), "private-use (RFC 1918)"),
    (
        v4(192, 175, 48, 0, 24),
        "AS112 direct delegation (RFC 7534); global, refused: anycast DNS sink",
    ),
    (v4(198, 18, 0, 0, 15), "benchmarking (RFC 2544)"),
    (
        v4(198, 51, 100, 0, 24),
        "documentation TEST-NET-2 (RFC 5737)",
    ),
    (
        v4(203, 0, 113, 0, 24),
        "documentation TEST-NET-3 (RFC 5737)",
    ),
    // Includes 233.252.0.0/24, MCAST-TEST-NET (RFC 6676).
    (v4(224, 0, 0, 0, 4), "multicast (RFC 5771)"),
    (v4(240, 0, 0, 0, 4), "reserved for future use (RFC 1112)"),
    // Inside 240.0.0.0/4 already; listed because it is its own registry row.
    (v4(255, 255, 255, 255, 32), "limited broadcast (RFC 919)"),
];

/// `::ffff:0:0/96`, IPv4-mapped (RFC 4291): the socket really talks IPv4 to
/// the embedded address, so that address decides.
const V6_MAPPED: Ipv6Net = v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96);

/// `64:ff9b::/96`, NAT64 well-known prefix (RFC 6052). The registry calls it
/// globally reachable; the NAT64 gateway forwards to the embedded IPv4
/// address, so that address decides: `64:ff9b::808:808` (8.8.8.8) is
/// allowed, `64:ff9b::a9fe:a9fe` (169.254.169.254) is refused. RFC 6052 §3.1
/// forbids the well-known prefix with private IPv4, but a gateway may still
/// translate it, hence the check.
const V6_NAT64: Ipv6Net = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);

/// `2002::/16`, 6to4 (RFC 3056): `2002:AABB:CCDD::/48` is the site behind
/// the IPv4 router A.B.C.D. The registry says N/A; the embedded IPv4 address
/// decides, the same rule as NAT64 (refused if it is special, allowed if it
/// is public). The 80 bits after it (subnet, interface) are the site's own.
const V6_6TO4: Ipv6Net = v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16);

/// `2000::/3`, the only part of the IPv6 space IANA has allocated for global
/// unicast (IANA IPv6 Address Space registry). Everything outside it (apart
/// from the two embedding forms above) is reserved by the IETF, local or
/// multicast, and cannot be a public host today. This catch-all also covers
/// any future special-purpose block carved out of reserved space.
const V6_GLOBAL_UNICAST: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

/// IPv6 blocks refused, each with the registry entry it comes from.
///
/// Every row of the IANA IPv6 Special-Purpose Address Registry whose
/// "Globally Reachable" is False or N/A is here (except the embedding forms
/// above, which are judged by their IPv4 address), plus the address-space
/// rows that are never public hosts. Rows outside 2000::/3 are also caught by
/// [`V6_GLOBAL_UNICAST`]; they are listed so the table reads as the registry
/// and so a test can check each one.
const V6_REFUSED: &[(Ipv6Net, &str)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified (RFC 4291)"),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback (RFC 4291)"),
    // Deprecated (RFC 4291 §2.5.5.1) and no longer in the registry. Refused
    // whatever it embeds: nothing legitimate uses it, and stacks that still
    // tunnel it automatically would reach the embedded IPv4 (::7f00:1 is
    // 127.0.0.1). Simplest safe choice, so ::808:808 is refused too.
    (
        v6([0, 0, 0, 0, 0, 0, 0, 0], 96),
        "IPv4-compatible (deprecated, RFC 4291)",
    ),
    (
        v6([0, 0, 0, 0, 0xffff, 0, 0, 0], 96),
        "IPv4-translated (RFC 2765)",
    ),
    // Local-use NAT64 prefix: the embedding format is the network's own, so
    // the IPv4 address cannot be read reliably. Refused whole.
    (
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        "local-use IPv4/IPv6 translation (RFC 8215)",
    ),
    (
        v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64),
        "discard-only (RFC 6666)",
    ),
    (
        v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64),
        "dummy IPv6 prefix (RFC 9780)",
    ),
    // The whole /23, as asked: Teredo 2001::/32 (embeds an obfuscated client
    // IPv4 and a server IPv4; N/A), benchmarking 2001:2::/48, ORCHID
    // 2001:10::/28 (not global) and the anycast/overlay rows the registry
    // calls global (2001:1::1-3 PCP/TURN/SRP anycast, AMT 2001:3::/32, AS112
    // 2001:4:112::/48, ORCHIDv2 2001:20::/28, DET 2001:30::/28): none of them
    // serves web pages, and the anycast ones may be answered locally.
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        "IETF protocol assignments (RFC 2928)",
    ),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        "documentation (RFC 3849)",
    ),
    (
        v6([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48),
        "AS112 direct delegation (RFC 7534); global, refused like 192.175.48.0/24",
    ),
    (
        v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
        "documentation (RFC 9637)",
    ),
    (
        v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16),
        "SRv6 SIDs (RFC 9602)",
    ),
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "unique local (RFC 4193); AWS IMDS fd00:ec2::254",
    ),
    (
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        "link-local (RFC 4291)",
    ),
    (
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        "site-local (deprecated, RFC 3879)",
    ),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast (RFC 4291)"),
];

/// Whether a link may NOT point at this address: true unless the address is
/// on the public internet (see the module doc and the tables for what that
/// means here).
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_forbidden_v4(ip),
        IpAddr::V6(ip) => is_forbidden_v6(ip),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    V4_REFUSED.iter().any(|(net, _)| net.contains(&ip))
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_forbidden_v4(v4);
    }
    V6_REFUSED.iter().any(|(net, _)| net.contains(&ip)) || !V6_GLOBAL_UNICAST.contains(&ip)
}

/// The IPv4 address that traffic to `ip` really goes to, for the IPv6 forms
/// where that is well defined (v4-mapped, NAT64 well-known prefix, 6to4).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = ip.to_bits();
    if V6_MAPPED.contains(&ip) || V6_NAT64.contains(&ip) {
        // The low 32 bits; truncation is the point.
        Some(Ipv4Addr::from_bits(bits as u32))
    } else if V6_6TO4.contains(&ip) {
        // Bits 16..48: 2002:AABB:CCDD::/48.
        Some(Ipv4Addr::from_bits((bits >> 80) as u32))
    } else {
        None
    }
}

/// Top-level domains whose names never resolve to a public host, and why.
/// Names under them are refused without asking DNS.
const SPECIAL_TLDS: &[(&str, &str)] = &[
    (
        "localhost",
        "RFC 6761 §6.3: loopback; resolvers and browsers answer 127.0.0.1 themselves",
    ),
    (
        "local",
        "RFC 6762: multicast DNS, answered on the local link only",
    ),
    (
        "invalid",
        "RFC 6761 §6.4: never resolves; refusing saves the lookup",
    ),
    (
        "test",
        "RFC 6761 §6.2: never in the public DNS; only a local resolver answers",
    ),
    // Only the TLD: example.com/.net/.org are real public names and stay
    // allowed (hop's own tests link to them).
    ("example", "RFC 6761 §6.5: never in the public DNS"),
    (
        "onion",
        "RFC 7686: Tor; must not be looked up in DNS, not on the public internet",
    ),
    (
        "alt",
        "RFC 9476: non-DNS namespaces; never in the public DNS",
    ),
    (
        "internal",
        "ICANN-reserved for private use (2024); metadata.google.internal, *.ec2.internal",
    ),
    (
        "arpa",
        "RFC 3172 infrastructure: home.arpa (RFC 8375) is the home network, ipv4only.arpa \
         (RFC 7050) NAT64 discovery, in-addr/ip6.arpa reverse zones; no web hosts",
    ),
    (
        "home",
        "ICANN name-collision TLD, never to be delegated; used on home networks",
    ),
    (
        "corp",
        "ICANN name-collision TLD, never to be delegated; used on corporate networks",
    ),
    (
        "mail",
        "ICANN name-collision TLD, never to be delegated; used on private networks",
    ),
    (
        "localdomain",
        "not delegated; localhost.localdomain is loopback in stock /etc/hosts",
    ),
];

/// A link target's host, as this module sees it.
enum Host {
    Ip(IpAddr),
    /// Lower-case, without the trailing dot, checked to be a DNS name.
    Name(String),
    /// Not an IP literal and not a well-formed ASCII DNS name.
    Malformed,
}

fn parse_host(host: &str) -> Host {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Host::Ip(ip);
    }
    // One trailing dot is the absolute form of the same name.
    let name = host.strip_suffix('.').unwrap_or(host);
    // ASCII only: hop hands over the `url` crate's host, already IDNA-encoded
    // (xn--...). Anything else (brackets around a non-address, `%` zone ids,
    // spaces, non-ASCII) did not come from a parsed URL: fail closed.
    let well_formed = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if well_formed {
        Host::Name(name.to_ascii_lowercase())
    } else {
        Host::Malformed
    }
}

/// Whether a (lower-case, well-formed) name is refused without DNS.
fn is_special_name(name: &str) -> bool {
    let Some((_, tld)) = name.rsplit_once('.') else {
        // Dotless: `localhost`, `metadata` (GCE), `instance-data` (EC2),
        // `wpad`, intranet hosts. No public host has a dotless name (ICANN
        // forbids dotless domains, SAC053), and resolvers complete them
        // with the local search domain, which makes them local by design.
        return true;
    };
    // A numeric last label is an IPv4 address in a form the URL standard
    // would have rewritten and libc's inet_aton still accepts (127.1,
    // 0x7f.0.0.1). No TLD is numeric (RFC 3696 §2).
    let numeric = tld.bytes().all(|b| b.is_ascii_digit())
        || tld
            .strip_prefix("0x")
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
    numeric || SPECIAL_TLDS.iter().any(|(special, _)| *special == tld)
}

/// Whether a host name is refused without resolving it: `localhost` and
/// `*.localhost` (any case, with or without a trailing dot), special-use and
/// never-delegated domains (`.local`, `.test`, `.invalid`, `.example`,
/// `.onion`, `.alt`, `.internal` incl. `metadata.google.internal`, `.arpa`
/// incl. `home.arpa`, `.home`, `.corp`, `.mail`, `.localdomain`), dotless
/// names (`metadata`, `instance-data`), numeric last labels (`127.1`) and
/// malformed hosts. `example.com` and friends are allowed.
///
/// `host` is what a parsed URL calls its host (IDNA ASCII form); an IP
/// literal, with or without brackets, is judged by [`is_forbidden_ip`] so
/// that a caller who does not tell the two apart still gets a safe answer.
/// A name this returns false for must still be resolved: see
/// [`resolve_public`].
pub fn is_forbidden_name(host: &str) -> bool {
    match parse_host(host) {
        Host::Ip(ip) => is_forbidden_ip(ip),
        Host::Name(name) => is_special_name(&name),
        Host::Malformed => true,
    }
}

/// Why [`resolve_public`] refused a host. Every variant is a refusal: the
/// check fails closed. The variants are for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address, or at least one address the name resolves to, is not on
    /// the public internet.
    Private,
    /// The name is refused without asking DNS (see [`is_forbidden_name`]).
    SpecialName,
    /// The name did not resolve, resolved to nothing, or the lookup failed.
    Unresolvable,
    /// The lookup did not answer within the timeout.
    Timeout,
    /// No lookup slot was free within the timeout.
    Busy,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Private => "host is not on the public internet",
            Refusal::SpecialName => "host name is local or special-use",
            Refusal::Unresolvable => "host name does not resolve",
            Refusal::Timeout => "host name lookup timed out",
            Refusal::Busy => "too many host name lookups in progress",
        })
    }
}

impl std::error::Error for Refusal {}

/// Checks that a link target's host is on the public internet, resolving it
/// if it is a name. `Ok(())` only if it is an allowed IP literal (with or
/// without brackets; no DNS, no lookup slot), or a name that passes
/// [`is_forbidden_name`] and resolves, within `timeout`, to at least one
/// address, all of which pass [`is_forbidden_ip`].
///
/// `limit` bounds the lookups running at once (hop keeps one, e.g.
/// `Arc::new(Semaphore::new(8))`, in its state). A lookup holds its permit
/// until the system resolver has really returned, even after this function
/// has given up on it with [`Refusal::Timeout`]: `getaddrinfo` cannot be
/// cancelled, so this is what keeps slow names from piling up threads in
/// the blocking pool. If no permit frees up within `timeout`, the answer is
/// [`Refusal::Busy`]. `timeout` covers the wait for a permit and the lookup
/// together. It takes `&Arc<Semaphore>` rather than `&Semaphore` because the
/// permit must move into the blocking task, which outlives this call.
///
/// The name is resolved in its absolute form (`name.`), so the resolver's
/// search list is never applied: with `ndots:5` (Kubernetes) a plain
/// `example.com` would first be tried as `example.com.<namespace>.svc.cluster.local`.
pub async fn resolve_public(
    host: &str,
    limit: &Arc<Semaphore>,
    timeout: Duration,
) -> Result<(), Refusal> {
    check_host(host, limit, timeout, system_resolve).await
}

/// [`resolve_public`] with the resolver passed in, so tests can put in one
/// that records, fails, hangs or panics without touching the network.
async fn check_host<F>(
    host: &str,
    limit: &Arc<Semaphore>,
    timeout: Duration,
    resolve: F,
) -> Result<(), Refusal>
where
    F: FnOnce(&str) -> io::Result<Vec<IpAddr>> + Send + 'static,
{
    match parse_host(host) {
        Host::Ip(ip) if is_forbidden_ip(ip) => Err(Refusal::Private),
        Host::Ip(_) => Ok(()),
        Host::Malformed => Err(Refusal::SpecialName),
        Host::Name(name) if is_special_name(&name) => Err(Refusal::SpecialName),
        Host::Name(name) => lookup_checked(format!("{name}."), limit, timeout, resolve).await,
    }
}

/// The system resolver (`getaddrinfo`: /etc/hosts, then DNS, per nsswitch).
/// Blocking; only ever called on the blocking pool.
fn system_resolve(name: &str) -> io::Result<Vec<IpAddr>> {
    Ok((name, 0).to_socket_addrs()?.map(|sa| sa.ip()).collect())
}

/// Resolves `name` with `resolve` on the blocking pool under `limit`, and
/// checks every address.
async fn lookup_checked<F>(
    name: String,
    limit: &Arc<Semaphore>,
    timeout: Duration,
    resolve: F,
) -> Result<(), Refusal>
where
    F: FnOnce(&str) -> io::Result<Vec<IpAddr>> + Send + 'static,
{
    let deadline = Instant::now() + timeout;
    let permit = match tokio::time::timeout_at(deadline, Arc::clone(limit).acquire_owned()).await {
        Ok(Ok(permit)) => permit,
        // No slot in time, or the semaphore was closed (shutting down).
        Ok(Err(_)) | Err(_) => return Err(Refusal::Busy),
    };
    let lookup = tokio::task::spawn_blocking(move || {
        // Owned by the blocking task: freed when the resolver returns (or
        // panics), not when the caller stops waiting.
        let _permit = permit;
        resolve(&name)
    });
    let addrs = match tokio::time::timeout_at(deadline, lookup).await {
        // Dropping the JoinHandle does not stop the lookup; it keeps its
        // permit until it ends, which is the bound we want.
        Err(_) => return Err(Refusal::Timeout),
        // The resolver panicked, or the runtime is shutting down.
        Ok(Err(_)) => return Err(Refusal::Unresolvable),
        Ok(Ok(Err(_))) => return Err(Refusal::Unresolvable),
        Ok(Ok(Ok(addrs))) => addrs,
    };
    if addrs.is_empty() {
        Err(Refusal::Unresolvable)
    } else if addrs.into_iter().any(is_forbidden_ip) {
        // One private answer taints the name: the client may pick any.
        Err(Refusal::Private)
    } else {
        Ok(())
    }
}

/// The check as hop's server uses it: a bounded number of lookups at once,
/// a timeout, and at redirect time a short-lived cache of verdicts so that a
/// popular link costs one lookup a minute, not one per click.
pub struct TargetGuard {
    slots: Arc<Semaphore>,
    timeout: Duration,
    /// Host → refused (or not), for the redirect. Undecided outcomes (busy,
    /// timed out) are not cached.
    verdicts: moka::sync::Cache<String, Option<Refusal>>,
}

impl TargetGuard {
    /// At most `lookups` name lookups at once, each within `timeout`.
    pub fn new(lookups: usize, timeout: Duration) -> TargetGuard {
        TargetGuard {
            slots: Arc::new(Semaphore::new(lookups.max(1))),
            timeout,
            verdicts: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }

    /// A fresh check (creating or editing a link).
    pub async fn check(&self, host: &str) -> Result<(), Refusal> {
        let verdict = resolve_public(host, &self.slots, self.timeout).await;
        if !matches!(verdict, Err(Refusal::Busy | Refusal::Timeout)) {
            self.verdicts.insert(host.to_owned(), verdict.err());
        }
        verdict
    }

    /// The check at redirect time: a verdict of the last minute if there is
    /// one, else a fresh check.
    pub async fn check_cached(&self, host: &str) -> Result<(), Refusal> {
        match self.verdicts.get(host) {
            Some(None) => Ok(()),
            Some(Some(refusal)) => Err(refusal),
            None => self.check(host).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// Checks a table of (address, refused?) cases, reporting every failure.
    fn check_ips(cases: &[(&str, bool)]) {
        let wrong: Vec<String> = cases
            .iter()
            .filter(|(addr, refused)| is_forbidden_ip(ip(addr)) != *refused)
            .map(|(addr, refused)| format!("{addr}: expected refused={refused}"))
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    fn check_names(cases: &[(&str, bool)]) {
        let wrong: Vec<String> = cases
            .iter()
            .filter(|(host, refused)| is_forbidden_name(host) != *refused)
            .map(|(host, refused)| format!("{host:?}: expected refused={refused}"))
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn tables_are_canonical_and_refuse_their_own_ends() {
        for (net, what) in V4_REFUSED {
            assert_eq!(*net, net.trunc(), "host bits set in {net} ({what})");
            assert!(is_forbidden_v4(net.network()), "{net} ({what})");
            assert!(is_forbidden_v4(net.broadcast()), "{net} ({what})");
        }
        for (net, what) in V6_REFUSED {
            assert_eq!(*net, net.trunc(), "host bits set in {net} ({what})");
            assert!(is_forbidden_v6(net.network()), "{net} ({what})");
            assert!(is_forbidden_v6(net.broadcast()), "{net} ({what})");
        }
        for net in [V6_MAPPED, V6_NAT64, V6_6TO4, V6_GLOBAL_UNICAST] {
            assert_eq!(net, net.trunc());
        }
    }

    #[test]
    fn review_findings_are_refused() {
        check_names(&[
            ("[64:ff9b::a9fe:a9fe]", true),
            ("[2002:a9fe:a9fe::1]", true),
            ("[::7f00:1]", true),
            ("[fec0::1]", true),
            ("224.0.0.1", true),
            ("198.18.0.0", true),
            ("198.19.255.255", true),
            ("localhost.", true),
            ("foo.localhost", true),
            ("a.b.localhost.", true),
            ("metadata.google.internal", true),
        ]);
    }

    #[test]
    fn public_addresses_are_allowed() {
        check_ips(&[
            ("8.8.8.8", false),
            ("1.1.1.1", false),
            ("93.184.216.34", false),
            ("2606:4700:4700::1111", false),
            ("2001:4860:4860::8888", false),
            ("2a00:1450:4001:81c::200e", false),
        ]);
    }

    #[test]
    fn ipv4_registry_inside_and_just_outside() {
        check_ips(&[
            // 0.0.0.0/8
            ("0.0.0.0", true),
            ("0.255.255.255", true),
            ("1.0.0.0", false),
            // 10.0.0.0/8
            ("9.255.255.255", false),
            ("10.0.0.0", true),
            ("10.255.255.255", true),
            ("11.0.0.0", false),
            // 100.64.0.0/10
            ("100.63.255.255", false),
            ("100.64.0.0", true),
            ("100.100.100.200", true), // Alibaba Cloud metadata
            ("100.127.255.255", true),
            ("100.128.0.0", false),
            // 127.0.0.0/8
            ("126.255.255.255", false),
            ("127.0.0.1", true),
            ("127.255.255.255", true),
            ("128.0.0.0", false),
            // 169.254.0.0/16
            ("169.253.255.255", false),
            ("169.254.0.0", true),
            ("169.254.169.254", true),
            ("169.255.0.0", false),
            // 172.16.0.0/12
            ("172.15.255.255", false),
            ("172.16.0.0", true),
            ("172.31.255.255", true),
            ("172.32.0.0", false),
            // 192.0.0.0/24, including the rows the registry calls global
            ("191.255.255.255", false),
            ("192.0.0.0", true),
            ("192.0.0.8", true),
            ("192.0.0.9", true),
            ("192.0.0.10", true),
            ("192.0.0.170", true),
            ("192.0.0.255", true),
            ("192.0.1.0", false),
            // 192.0.2.0/24
            ("192.0.2.0", true),
            ("192.0.2.255", true),
            ("192.0.3.0", false),
            // 192.31.196.0/24
            ("192.31.195.255", false),
            ("192.31.196.1", true),
            ("192.31.197.0", false),
            // 192.52.193.0/24
            ("192.52.192.255", false),
            ("192.52.193.1", true),
            ("192.52.194.0", false),
            // 192.88.99.0/24
            ("192.88.98.255", false),
            ("192.88.99.1", true),
            ("192.88.99.2", true),
            ("192.88.100.0", false),
            // 192.168.0.0/16
            ("192.167.255.255", false),
            ("192.168.0.1", true),
            ("192.168.255.255", true),
            ("192.169.0.0", false),
            // 192.175.48.0/24
            ("192.175.47.255", false),
            ("192.175.48.1", true),
            ("192.175.49.0", false),
            // 198.18.0.0/15
            ("198.17.255.255", false),
            ("198.18.0.0", true),
            ("198.19.255.255", true),
            ("198.20.0.0", false),
            // 198.51.100.0/24
            ("198.51.99.255", false),
            ("198.51.100.7", true),
            ("198.51.101.0", false),
            // 203.0.113.0/24
            ("203.0.112.255", false),
            ("203.0.113.7", true),
            ("203.0.114.0", false),
            // 224.0.0.0/4 multicast
            ("223.255.255.255", false),
            ("224.0.0.1", true),
            ("233.252.0.1", true),
            ("239.255.255.255", true),
            // 240.0.0.0/4 and 255.255.255.255
            ("240.0.0.0", true),
            ("255.255.255.254", true),
            ("255.255.255.255", true),
        ]);
    }

    #[test]
    fn ipv6_registry_inside_and_just_outside() {
        check_ips(&[
            ("::", true),
            ("::1", true),
            // ::/96 IPv4-compatible: refused whatever it embeds
            ("::2", true),
            ("::7f00:1", true),
            ("::808:808", true),
            ("::ffff:ffff", true),
            // ::ffff:0:0:0/96 IPv4-translated
            ("::ffff:0:808:808", true),
            // 64:ff9b:1::/48 local-use NAT64
            ("64:ff9b:1::808:808", true),
            ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", true),
            // 100::/64 discard, 100:0:0:1::/64 dummy
            ("100::", true),
            ("100::ffff:ffff:ffff:ffff", true),
            ("100:0:0:1::1", true),
            // 2001::/23, Teredo and the rest of the IETF block
            ("2001::", true),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", true),
            ("2001:1::1", true),
            ("2001:1::3", true),
            ("2001:2::1", true),
            ("2001:3::1", true),
            ("2001:4:112::1", true),
            ("2001:10::1", true),
            ("2001:20::1", true),
            ("2001:30::1", true),
            ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001:200::1", false), // APNIC, first address past the /23
            ("2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            // 2001:db8::/32
            ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2001:db8::1", true),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001:db9::", false),
            // 2620:4f:8000::/48 AS112
            ("2620:4f:7fff:ffff:ffff:ffff:ffff:ffff", false),
            ("2620:4f:8000::1", true),
            ("2620:4f:8001::", false),
            // 3fff::/20 documentation
            ("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("3fff::1", true),
            ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("3fff:1000::", false),
            // Outside 2000::/3, reserved by IETF
            ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("4000::", true),
            // 5f00::/16 SRv6
            ("5f00::1", true),
            ("5f00:ffff::", true),
            // fc00::/7 ULA
            ("fc00::", true),
            ("fd00:ec2::254", true), // AWS IMDS over IPv6
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            // fe80::/10 link-local, fec0::/10 site-local
            ("fe80::1", true),
            ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("fec0::1", true),
            ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            // ff00::/8 multicast, global scope too
            ("ff02::1", true),
            ("ff0e::1", true),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
        ]);
    }

    #[test]
    fn embedded_ipv4_decides_mapped_nat64_and_6to4() {
        check_ips(&[
            // ::ffff:0:0/96 IPv4-mapped
            ("::ffff:127.0.0.1", true),
            ("::ffff:169.254.169.254", true),
            ("::ffff:10.0.0.1", true),
            ("::ffff:0.0.0.0", true),
            ("::ffff:224.0.0.1", true),
            ("::ffff:8.8.8.8", false),
            ("::ffff:93.184.216.34", false),
            // 64:ff9b::/96 NAT64 well-known prefix
            ("64:ff9b::a9fe:a9fe", true),
            ("64:ff9b::7f00:1", true),
            ("64:ff9b::a00:1", true),
            ("64:ff9b::c612:1", true), // 198.18.0.1
            ("64:ff9b::808:808", false),
            ("64:ff9b::1.1.1.1", false),
            // just outside the /96: reserved space, refused
            ("64:ff9b::1:808:808", true),
            ("64:ff9a:ffff:ffff:ffff:ffff:808:808", true),
            // 2002::/16 6to4, IPv4 in bits 16..48
            ("2002:a9fe:a9fe::1", true),
            ("2002:7f00:1::", true),
            ("2002:a00:1:1:2:3:4:5", true),
            ("2002::", true), // 0.0.0.0
            ("2002:e000:1::", true),
            ("2002:808:808::1", false),
            ("2002:101:101:ffff:ffff:ffff:ffff:ffff", false),
            // just outside 2002::/16: ordinary global unicast
            ("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2003::1", false),
        ]);
        assert_eq!(
            embedded_v4(ip6("2002:c000:0201::1")),
            Some(Ipv4Addr::new(192, 0, 2, 1))
        );
        assert_eq!(
            embedded_v4(ip6("64:ff9b::c000:201")),
            Some(Ipv4Addr::new(192, 0, 2, 1))
        );
        assert_eq!(embedded_v4(ip6("::c000:201")), None);
    }

    #[test]
    fn names_refused_without_dns() {
        check_names(&[
            // localhost and *.localhost, any case, trailing dot or not
            ("localhost", true),
            ("LOCALHOST", true),
            ("LocalHost.", true),
            ("foo.localhost", true),
            ("x.LOCALHOST.", true),
            ("a.b.localhost.", true),
            ("localhost.localdomain", true),
            // cloud metadata
            ("metadata.google.internal", true),
            ("METADATA.GOOGLE.INTERNAL.", true),
            ("metadata", true),
            ("instance-data", true),
            ("instance-data.ec2.internal", true),
            ("ip-10-0-0-1.ec2.internal", true),
            // special-use and never-delegated domains
            ("printer.local", true),
            ("kubernetes.default.svc.cluster.local", true),
            ("nothing.invalid", true),
            ("hop.test", true),
            ("foo.example", true),
            ("nas.home.arpa", true),
            ("ipv4only.arpa", true),
            ("1.0.0.127.in-addr.arpa", true),
            (
                "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion",
                true,
            ),
            ("foo.alt", true),
            ("nas.home", true),
            ("dc.corp", true),
            ("relay.mail", true),
            // dotless
            ("intranet", true),
            ("wpad", true),
            ("2130706433", true),
            // numeric last label: IPv4 in libc-only forms
            ("127.1", true),
            ("127.0.1", true),
            ("0x7f.0.0.1", true),
            ("0x7f.0x1", true),
            // malformed: fail closed
            ("", true),
            (".", true),
            ("..", true),
            ("a..b", true),
            ("example.com..", true),
            (".example.com", true),
            ("[example.com]", true),
            ("fe80::1%eth0", true),
            ("[fe80::1%25eth0]", true),
            ("exa mple.com", true),
            ("bücher.de", true),
            ("example.com:80", true),
            // IP literals are judged as addresses
            ("127.0.0.1", true),
            ("[::1]", true),
            ("::1", true),
        ]);
    }

    #[test]
    fn ordinary_names_pass_the_name_check() {
        check_names(&[
            ("example.com", false),
            ("example.org", false),
            ("example.net", false),
            ("EXAMPLE.COM.", false),
            ("www.example.com", false),
            ("xn--bcher-kva.de", false),
            ("_dmarc.example.com", false),
            ("localhost.example.com", false),
            ("mylocalhost.com", false),
            ("local.example.com", false),
            ("test.com", false),
            ("foo.testing", false),
            ("google.internal.com", false),
            ("onion.example.org", false),
            ("arpa.example.net", false),
            ("0x7f.example.com", false),
            ("1.example.com", false),
            ("8.8.8.8", false),
            ("[2606:4700:4700::1111]", false),
        ]);
    }

    // ---- resolve_public ----------------------------------------------------
    //
    // This machine must send DNS to no one, so real lookups here are only of
    // `localhost` (answered from /etc/hosts, nsswitch "files dns"); failing,
    // hanging and panicking resolvers are stand-ins passed to lookup_checked.

    const SHORT: Duration = Duration::from_millis(50);
    const LONG: Duration = Duration::from_secs(5);

    fn sem(permits: usize) -> Arc<Semaphore> {
        Arc::new(Semaphore::new(permits))
    }

    fn answers(
        addrs: &'static [&'static str],
    ) -> impl FnOnce(&str) -> io::Result<Vec<IpAddr>> + Send {
        move |_| Ok(addrs.iter().map(|a| ip(a)).collect())
    }

    async fn wait_for_permits(limit: &Semaphore, n: usize) {
        for _ in 0..400 {
            if limit.available_permits() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!(
            "permits never came back: {} of {n}",
            limit.available_permits()
        );
    }

    #[tokio::test]
    async fn localhost_is_refused_by_name_and_by_address() {
        let limit = sem(1);
        assert_eq!(
            resolve_public("localhost", &limit, LONG).await,
            Err(Refusal::SpecialName)
        );
        assert_eq!(
            resolve_public("LOCALHOST.", &limit, LONG).await,
            Err(Refusal::SpecialName)
        );
        // Through the real system resolver, without the name check:
        // /etc/hosts sends it to loopback, which the address check refuses.
        let got = lookup_checked("localhost".into(), &limit, LONG, system_resolve).await;
        assert_eq!(got, Err(Refusal::Private));
        assert_eq!(
            limit.available_permits(),
            1,
            "permit returned after the lookup"
        );
    }

    #[tokio::test]
    async fn invalid_and_special_names_are_refused_without_a_lookup() {
        // No permits at all: a refusal other than Busy proves no lookup ran.
        let none = sem(0);
        for host in [
            "nothing.invalid",
            "metadata.google.internal",
            "hop.test",
            "metadata",
            "127.1",
            "",
        ] {
            assert_eq!(
                resolve_public(host, &none, SHORT).await,
                Err(Refusal::SpecialName),
                "{host}"
            );
        }
    }

    #[tokio::test]
    async fn literals_are_checked_without_dns_or_a_permit() {
        let none = sem(0);
        for host in [
            "127.0.0.1",
            "[::1]",
            "[64:ff9b::a9fe:a9fe]",
            "[2002:a9fe:a9fe::1]",
            "[::7f00:1]",
            "169.254.169.254",
        ] {
            assert_eq!(
                resolve_public(host, &none, SHORT).await,
                Err(Refusal::Private),
                "{host}"
            );
        }
        for host in [
            "8.8.8.8",
            "[2606:4700:4700::1111]",
            "2606:4700:4700::1111",
            "[64:ff9b::808:808]",
        ] {
            assert_eq!(resolve_public(host, &none, SHORT).await, Ok(()), "{host}");
        }
    }

    #[tokio::test]
    async fn busy_when_no_permit_is_free() {
        let none = sem(0);
        assert_eq!(
            resolve_public("example.com", &none, SHORT).await,
            Err(Refusal::Busy)
        );
        let closed = sem(1);
        closed.close();
        assert_eq!(
            resolve_public("example.com", &closed, SHORT).await,
            Err(Refusal::Busy)
        );
    }

    #[tokio::test]
    async fn lookup_failures_are_refused() {
        let limit = sem(1);
        let not_found = |_: &str| Err(io::Error::new(io::ErrorKind::NotFound, "NXDOMAIN"));
        assert_eq!(
            lookup_checked("nothing.invalid.".into(), &limit, LONG, not_found).await,
            Err(Refusal::Unresolvable)
        );
        assert_eq!(
            lookup_checked("empty.example.".into(), &limit, LONG, answers(&[])).await,
            Err(Refusal::Unresolvable)
        );
        let panics = |_: &str| -> io::Result<Vec<IpAddr>> { panic!("resolver blew up") };
        assert_eq!(
            lookup_checked("boom.example.".into(), &limit, LONG, panics).await,
            Err(Refusal::Unresolvable)
        );
        assert_eq!(
            limit.available_permits(),
            1,
            "permit returned after failures and a panic"
        );
    }

    #[tokio::test]
    async fn every_resolved_address_must_be_public() {
        let limit = sem(1);
        let public = answers(&["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]);
        assert_eq!(
            lookup_checked("example.com.".into(), &limit, LONG, public).await,
            Ok(())
        );
        let mixed = answers(&["8.8.8.8", "10.0.0.1"]);
        assert_eq!(
            lookup_checked("rebind.example.".into(), &limit, LONG, mixed).await,
            Err(Refusal::Private)
        );
        let nat64 = answers(&["64:ff9b::a9fe:a9fe"]);
        assert_eq!(
            lookup_checked("meta.example.".into(), &limit, LONG, nat64).await,
            Err(Refusal::Private)
        );
        assert_eq!(limit.available_permits(), 1);
    }

    #[tokio::test]
    async fn resolve_public_asks_for_the_absolute_name() {
        let limit = sem(1);
        for host in ["WWW.Example.COM", "www.example.com."] {
            let (tx, rx) = mpsc::channel();
            let record = move |name: &str| {
                tx.send(name.to_owned()).unwrap();
                Ok(vec![ip("93.184.216.34")])
            };
            assert_eq!(
                check_host(host, &limit, LONG, record).await,
                Ok(()),
                "{host}"
            );
            assert_eq!(rx.recv().unwrap(), "www.example.com.", "{host}");
        }
    }

    #[tokio::test]
    async fn a_timed_out_lookup_keeps_its_permit_until_the_resolver_returns() {
        let limit = sem(1);
        let (release, stuck) = mpsc::channel::<()>();
        let hang = move |_: &str| {
            // A getaddrinfo that will not return until told to.
            let _ = stuck.recv();
            Ok(vec![ip("93.184.216.34")])
        };
        assert_eq!(
            lookup_checked("slow.example.".into(), &limit, SHORT, hang).await,
            Err(Refusal::Timeout)
        );
        // The caller gave up but the lookup still runs, and still counts.
        assert_eq!(limit.available_permits(), 0);
        let public = answers(&["93.184.216.34"]);
        assert_eq!(
            lookup_checked("next.example.".into(), &limit, SHORT, public).await,
            Err(Refusal::Busy)
        );
        // Once the resolver returns, the slot is free again.
        release.send(()).unwrap();
        wait_for_permits(&limit, 1).await;
        let public = answers(&["93.184.216.34"]);
        assert_eq!(
            lookup_checked("next.example.".into(), &limit, SHORT, public).await,
            Ok(())
        );
        assert_eq!(limit.available_permits(), 1);
    }
}

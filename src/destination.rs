//! Rules for webhook destination URLs, and the address classification that
//! backs them.
//!
//! Customers type a destination URL; we deliver signed call results to it
//! from inside our network. Without rules, that URL is a server-side request
//! forgery (SSRF) primitive: `http://169.254.169.254/` reads cloud
//! credentials, `http://127.0.0.1:6379/` talks to a local Redis, and
//! `http://2130706433/` is the same loopback address in disguise.
//!
//! The module has two entry points:
//!
//! * [`check_url`] runs at **registration time**: it parses the URL and
//!   applies every rule in the table below, including classification of a
//!   literal IP host.
//! * [`check_ip`] runs at **connect time**, on every address the destination
//!   host name resolved to, right before connecting. A host name that passed
//!   registration can later resolve to `127.0.0.1` (DNS rebinding), so the
//!   delivery client must call [`check_ip`] on the address it actually
//!   connects to, and never connect to an address that fails it.
//!
//! Both share [`classify_ip`], which maps an address to the [`BlockedRange`]
//! it falls in, or `None` for a publicly routable address. IPv6 forms that
//! embed an IPv4 address (IPv4-mapped, IPv4-compatible, IPv4-translated,
//! NAT64, 6to4) are unwrapped and classified by the embedded address, so
//! `[::ffff:127.0.0.1]`, `[64:ff9b::7f00:1]` and `[2002:7f00:1::]` are all
//! loopback.
//!
//! # Rules
//!
//! [`check_url`] applies the rules in this order and reports the first one
//! broken. The code in the first column is [`DestinationError::rule`].
//!
//! | Rule (`rule()`)     | Refused                                                                 | Error                                   | Lifted by        |
//! |---------------------|-------------------------------------------------------------------------|-----------------------------------------|------------------|
//! | `too_long`          | input, or the normalised URL, longer than [`MAX_URL_LEN`] (2048) bytes  | [`DestinationError::TooLong`]           | never            |
//! | `invalid_url`       | anything [`url::Url::parse`] rejects                                    | [`DestinationError::InvalidUrl`]        | never            |
//! | `scheme`            | any scheme other than `https` and `http` (`ftp:`, `javascript:`, ...)   | [`DestinationError::SchemeNotAllowed`]  | never            |
//! | `insecure_scheme`   | `http`                                                                  | [`DestinationError::InsecureScheme`]    | `allow_http`     |
//! | `userinfo`          | a user name or password (`https://user:pw@host/`)                       | [`DestinationError::UserInfo`]          | never            |
//! | `missing_host`      | no host, or an empty one (`https://`, `https://:443/`; see below)       | [`DestinationError::MissingHost`]       | never            |
//! | `fragment`          | a `#fragment` (it is never sent to the server)                          | [`DestinationError::Fragment`]          | never            |
//! | `blocked_hostname`  | local and internal names, see [`is_blocked_hostname`]                   | [`DestinationError::BlockedHostname`]   | `allow_private`  |
//! | `blocked_address`   | a literal IP in a [`BlockedRange`], see [`check_ip`]                    | [`DestinationError::BlockedAddress`]    | `allow_private`, except the ranges in [`BlockedRange::is_always_blocked`] |
//!
//! An empty host is reported by the parser, so `https://` and `ftp://` fail
//! with `missing_host` before the scheme rule is looked at.
//!
//! Literal IPv4 hosts are normalised by the `url` crate before they are
//! classified (WHATWG host parsing for `http`/`https`): `http://2130706433/`,
//! `http://0x7f.1/`, `http://127.1/`, `https://017700000001/` and
//! `https://%31%32%37.0.0.1/` all become `127.0.0.1`.
//!
//! [`DestinationPolicy::strict`] (the [`Default`]) is what production uses;
//! [`DestinationPolicy::insecure`] lets a developer point webhooks at
//! `http://127.0.0.1:9000/`. Even the insecure policy never allows the
//! unspecified address, multicast, broadcast, cloud metadata endpoints or
//! reserved ranges: no HTTP receiver can legitimately live there.
//!
//! Error messages name the rule that was broken and never repeat a password
//! from the input.
//!
//! # Example
//!
//! ```
//! use std::net::IpAddr;
//! use atllas_webhooks::destination::{
//!     check_ip, check_url, BlockedRange, DestinationError, DestinationPolicy,
//! };
//!
//! let strict = DestinationPolicy::strict();
//!
//! // Registration: a public https endpoint is accepted and returned parsed.
//! let url = check_url("https://hooks.example.com/calls?tenant=42", &strict)?;
//! assert_eq!(url.host_str(), Some("hooks.example.com"));
//!
//! // Loopback in disguise is still loopback.
//! let err = check_url("https://017700000001/", &strict).unwrap_err();
//! assert_eq!(err.rule(), "blocked_address");
//! assert_eq!(
//!     err,
//!     DestinationError::BlockedAddress {
//!         ip: IpAddr::from([127, 0, 0, 1]),
//!         range: BlockedRange::Loopback,
//!     }
//! );
//!
//! // Plain http is refused unless the policy allows it.
//! assert_eq!(
//!     check_url("http://hooks.example.com/", &strict),
//!     Err(DestinationError::InsecureScheme)
//! );
//! assert!(check_url("http://127.0.0.1:9000/", &DestinationPolicy::insecure()).is_ok());
//!
//! // Connect time: check every resolved address before connecting
//! // (here, a host name that was rebound to the metadata service).
//! let resolved = IpAddr::from([169, 254, 169, 254]);
//! let err = check_ip(resolved, &DestinationPolicy::insecure()).unwrap_err();
//! assert_eq!(
//!     err,
//!     DestinationError::BlockedAddress { ip: resolved, range: BlockedRange::CloudMetadata }
//! );
//! # Ok::<(), DestinationError>(())
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Longest destination URL accepted, in bytes, both as typed and after
/// normalisation by the `url` crate.
pub const MAX_URL_LEN: usize = 2048;

/// Longest scheme echoed back in [`DestinationError::SchemeNotAllowed`].
const MAX_ECHOED_SCHEME: usize = 32;

/// Which destinations a deployment accepts.
///
/// The [`Default`] is [`DestinationPolicy::strict`]: `https` only, public
/// addresses only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DestinationPolicy {
    /// Accept plain `http://` destinations (local development only).
    pub allow_http: bool,
    /// Accept private, loopback, link-local and similar destinations, and
    /// local host names such as `localhost` (local development only).
    ///
    /// Ranges for which [`BlockedRange::is_always_blocked`] is true stay
    /// blocked even then.
    pub allow_private: bool,
}

impl DestinationPolicy {
    /// Production policy: `https` only, publicly routable destinations only.
    /// Same as [`Default::default`].
    #[must_use]
    pub const fn strict() -> Self {
        Self {
            allow_http: false,
            allow_private: false,
        }
    }

    /// Local-development policy: `http` and private destinations allowed
    /// (for example `http://127.0.0.1:9000/`). Never use it in production.
    #[must_use]
    pub const fn insecure() -> Self {
        Self {
            allow_http: true,
            allow_private: true,
        }
    }
}

/// A non-public address range a destination fell into.
///
/// Returned by [`classify_ip`]; `None` there means the address is publicly
/// routable.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockedRange {
    /// The unspecified address: `0.0.0.0`, `::`. Connecting to it reaches
    /// the local host on common stacks. Always blocked.
    Unspecified,
    /// Loopback: `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 private networks `10.0.0.0/8`, `172.16.0.0/12`,
    /// `192.168.0.0/16`, plus the deprecated IPv6 site-local `fec0::/10`
    /// and the local-use NAT64 prefix `64:ff9b:1::/48` (RFC 8215).
    Private,
    /// Shared address space for carrier-grade NAT: `100.64.0.0/10`
    /// (RFC 6598).
    SharedCgnat,
    /// Link-local: `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// Cloud instance metadata and platform endpoints. Always blocked.
    ///
    /// * `169.254.169.254` (AWS, GCP, Azure, OCI, DigitalOcean, ... IMDS)
    /// * `169.254.170.2` (AWS ECS task metadata),
    ///   `169.254.170.23` (AWS EKS Pod Identity agent)
    /// * `100.100.100.200` (Alibaba Cloud)
    /// * `168.63.129.16` (Azure WireServer; a public address that is only
    ///   meaningful, and dangerous, from inside Azure)
    /// * `192.0.0.192` (Oracle Cloud Classic)
    /// * `fd00:ec2::254` (AWS IMDS over IPv6), `fd20:ce::254` (GCP IPv6)
    ///
    /// These are checked before the generic ranges, so `169.254.169.254`
    /// reports `CloudMetadata`, not `LinkLocal`.
    CloudMetadata,
    /// IPv6 unique local addresses: `fc00::/7`.
    UniqueLocal,
    /// Multicast: `224.0.0.0/4`, `ff00::/8`. Always blocked.
    Multicast,
    /// Limited broadcast: `255.255.255.255`. Always blocked.
    Broadcast,
    /// Documentation examples: `192.0.2.0/24`, `198.51.100.0/24`,
    /// `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// Benchmarking: `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// Reserved or special-purpose space that is not a valid unicast
    /// destination. Always blocked. IPv4: `0.0.0.0/8`, `192.0.0.0/24`
    /// (IETF protocol assignments), `192.88.99.0/24` (deprecated 6to4 relay
    /// anycast), `240.0.0.0/4`. IPv6: everything outside global unicast
    /// `2000::/3` that is not listed elsewhere (for example `100::/64`
    /// discard-only, `::/8` leftovers), Teredo `2001::/32`, and the
    /// non-global parts of the IETF protocol assignments `2001::/23`.
    Reserved,
}

impl BlockedRange {
    /// Every range, in declaration order.
    pub const ALL: [BlockedRange; 12] = [
        BlockedRange::Unspecified,
        BlockedRange::Loopback,
        BlockedRange::Private,
        BlockedRange::SharedCgnat,
        BlockedRange::LinkLocal,
        BlockedRange::CloudMetadata,
        BlockedRange::UniqueLocal,
        BlockedRange::Multicast,
        BlockedRange::Broadcast,
        BlockedRange::Documentation,
        BlockedRange::Benchmarking,
        BlockedRange::Reserved,
    ];

    /// Stable machine-readable code, for example `"loopback"`.
    #[must_use]
    pub const fn rule(&self) -> &'static str {
        match self {
            BlockedRange::Unspecified => "unspecified",
            BlockedRange::Loopback => "loopback",
            BlockedRange::Private => "private",
            BlockedRange::SharedCgnat => "shared_cgnat",
            BlockedRange::LinkLocal => "link_local",
            BlockedRange::CloudMetadata => "cloud_metadata",
            BlockedRange::UniqueLocal => "unique_local",
            BlockedRange::Multicast => "multicast",
            BlockedRange::Broadcast => "broadcast",
            BlockedRange::Documentation => "documentation",
            BlockedRange::Benchmarking => "benchmarking",
            BlockedRange::Reserved => "reserved",
        }
    }

    /// Whether this range stays blocked even when
    /// [`DestinationPolicy::allow_private`] is set.
    ///
    /// True for [`Unspecified`](Self::Unspecified),
    /// [`CloudMetadata`](Self::CloudMetadata),
    /// [`Multicast`](Self::Multicast), [`Broadcast`](Self::Broadcast) and
    /// [`Reserved`](Self::Reserved): an HTTP receiver cannot meaningfully
    /// live there, and metadata endpoints are never a legitimate webhook
    /// receiver, even in development.
    #[must_use]
    pub const fn is_always_blocked(&self) -> bool {
        matches!(
            self,
            BlockedRange::Unspecified
                | BlockedRange::CloudMetadata
                | BlockedRange::Multicast
                | BlockedRange::Broadcast
                | BlockedRange::Reserved
        )
    }

    /// Short human name, as used by [`Display`](fmt::Display).
    const fn human(&self) -> &'static str {
        match self {
            BlockedRange::Unspecified => "unspecified-address",
            BlockedRange::Loopback => "loopback",
            BlockedRange::Private => "private-network",
            BlockedRange::SharedCgnat => "shared (carrier-grade NAT)",
            BlockedRange::LinkLocal => "link-local",
            BlockedRange::CloudMetadata => "cloud metadata",
            BlockedRange::UniqueLocal => "unique local",
            BlockedRange::Multicast => "multicast",
            BlockedRange::Broadcast => "broadcast",
            BlockedRange::Documentation => "documentation",
            BlockedRange::Benchmarking => "benchmarking",
            BlockedRange::Reserved => "reserved",
        }
    }
}

impl fmt::Display for BlockedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.human())
    }
}

/// Why a destination was refused. Every message names the rule broken
/// (see [`rule`](Self::rule)) and never repeats a password from the input.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// The input is not a URL. Holds the parser's (input-free) reason.
    #[error("destination is not a valid URL: {0} (rule: invalid_url)")]
    InvalidUrl(String),
    /// The scheme is neither `https` nor `http`. Holds the scheme
    /// (truncated to 32 characters).
    #[error("destination scheme `{0}` is not allowed (rule: scheme); use an https:// URL")]
    SchemeNotAllowed(String),
    /// The scheme is `http` and the policy does not allow it.
    #[error(
        "destination uses plain http (rule: insecure_scheme); use https, or allow http for local development"
    )]
    InsecureScheme,
    /// The URL carries a user name or password.
    #[error(
        "destination contains credentials (rule: userinfo); remove the user name and password from the URL"
    )]
    UserInfo,
    /// The URL has no host, or an empty one.
    #[error(
        "destination has no host (rule: missing_host); use a URL like https://hooks.example.com/"
    )]
    MissingHost,
    /// The URL has a `#fragment`, which is never sent to the server.
    #[error(
        "destination contains a #fragment, which is never sent to the server (rule: fragment); remove it"
    )]
    Fragment,
    /// The host name names a local or internal service. Holds the
    /// (normalised) host name.
    #[error(
        "destination host `{0}` names a local or internal service (rule: blocked_hostname); use a public https endpoint or allow private destinations for local development"
    )]
    BlockedHostname(String),
    /// The address is in a blocked range.
    #[error(
        "destination {ip} is in the {range} range (rule: blocked_address); {hint}",
        hint = blocked_hint(*.range)
    )]
    BlockedAddress {
        /// The offending address (for IPv6 forms that embed IPv4, the IPv6
        /// address as given).
        ip: IpAddr,
        /// The range it falls in.
        range: BlockedRange,
    },
    /// The URL is too long.
    #[error("destination URL is {len} bytes long, more than {max} (rule: too_long)")]
    TooLong {
        /// Length in bytes.
        len: usize,
        /// The maximum, [`MAX_URL_LEN`].
        max: usize,
    },
}

impl DestinationError {
    /// Stable machine-readable code of the rule broken, for example
    /// `"scheme"`, `"userinfo"` or `"blocked_address"`.
    #[must_use]
    pub const fn rule(&self) -> &'static str {
        match self {
            DestinationError::InvalidUrl(_) => "invalid_url",
            DestinationError::SchemeNotAllowed(_) => "scheme",
            DestinationError::InsecureScheme => "insecure_scheme",
            DestinationError::UserInfo => "userinfo",
            DestinationError::MissingHost => "missing_host",
            DestinationError::Fragment => "fragment",
            DestinationError::BlockedHostname(_) => "blocked_hostname",
            DestinationError::BlockedAddress { .. } => "blocked_address",
            DestinationError::TooLong { .. } => "too_long",
        }
    }
}

fn blocked_hint(range: BlockedRange) -> &'static str {
    if range.is_always_blocked() {
        "this range is never allowed as a webhook destination; use a public https endpoint"
    } else {
        "use a public https endpoint or allow private destinations for local development"
    }
}

/// Check a destination URL typed by a customer, and return it parsed.
///
/// Applies the rules in the [module table](self#rules), in that order, and
/// returns the first one broken. A literal IP host is checked with
/// [`check_ip`]; a host name is checked with [`is_blocked_hostname`] (unless
/// `policy.allow_private`), and must still be re-checked with [`check_ip`]
/// on every resolved address at connect time.
///
/// Never panics.
///
/// # Errors
///
/// The [`DestinationError`] of the first rule broken.
pub fn check_url(input: &str, policy: &DestinationPolicy) -> Result<Url, DestinationError> {
    too_long(input.len())?;

    let url = Url::parse(input).map_err(|e| match e {
        url::ParseError::EmptyHost => DestinationError::MissingHost,
        other => DestinationError::InvalidUrl(other.to_string()),
    })?;
    too_long(url.as_str().len())?;

    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => return Err(DestinationError::InsecureScheme),
        other => {
            return Err(DestinationError::SchemeNotAllowed(
                other.chars().take(MAX_ECHOED_SCHEME).collect(),
            ));
        }
    }

    if !url.username().is_empty() || url.password().is_some() {
        return Err(DestinationError::UserInfo);
    }

    let host = match url.host() {
        Some(Host::Domain("")) | None => return Err(DestinationError::MissingHost),
        Some(host) => host,
    };

    if url.fragment().is_some() {
        return Err(DestinationError::Fragment);
    }

    match host {
        Host::Domain(name) => {
            if !policy.allow_private && is_blocked_hostname(name) {
                return Err(DestinationError::BlockedHostname(name.to_owned()));
            }
        }
        Host::Ipv4(ip) => check_ip(IpAddr::V4(ip), policy)?,
        Host::Ipv6(ip) => check_ip(IpAddr::V6(ip), policy)?,
    }

    Ok(url)
}

fn too_long(len: usize) -> Result<(), DestinationError> {
    if len > MAX_URL_LEN {
        Err(DestinationError::TooLong {
            len,
            max: MAX_URL_LEN,
        })
    } else {
        Ok(())
    }
}

/// Check one address: at registration for literal IP hosts, and at connect
/// time for every address a destination host name resolved to (against DNS
/// rebinding).
///
/// Publicly routable addresses pass. Blocked addresses pass only when
/// `policy.allow_private` is set and the range is not
/// [always blocked](BlockedRange::is_always_blocked).
///
/// # Errors
///
/// [`DestinationError::BlockedAddress`] with the range from [`classify_ip`].
pub fn check_ip(ip: IpAddr, policy: &DestinationPolicy) -> Result<(), DestinationError> {
    match classify_ip(ip) {
        None => Ok(()),
        Some(range) if policy.allow_private && !range.is_always_blocked() => Ok(()),
        Some(range) => Err(DestinationError::BlockedAddress { ip, range }),
    }
}

/// Classify an address: `None` means publicly routable, `Some` names the
/// non-public range it falls in.
///
/// Cloud metadata endpoints are matched first, then the specific ranges,
/// then the generic ones. IPv6 addresses that embed an IPv4 address (see
/// [`embedded_ipv4`]) are classified by the embedded address. IPv6 outside
/// global unicast `2000::/3` is [`BlockedRange::Reserved`] unless a more
/// specific range applies; Teredo `2001::/32` is blocked as
/// [`BlockedRange::Reserved`] rather than decoded, because a Teredo address
/// reaches an arbitrary IPv4 host through a relay.
#[must_use]
pub fn classify_ip(ip: IpAddr) -> Option<BlockedRange> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// The IPv4 address embedded in an IPv6 address, if it has one of these
/// forms:
///
/// * IPv4-mapped `::ffff:a.b.c.d` (`::ffff:0:0/96`)
/// * IPv4-translated `::ffff:0:a.b.c.d` (`::ffff:0:0:0/96`, RFC 2765)
/// * IPv4-compatible `::a.b.c.d` (`::/96`, deprecated), except `::` and
///   `::1`, which are the IPv6 unspecified and loopback addresses
/// * NAT64 well-known prefix `64:ff9b::a.b.c.d` (`64:ff9b::/96`, RFC 6052)
/// * NAT64 local-use prefix `64:ff9b:1::/48` (RFC 8215), read with the
///   `/96` layout (last 32 bits)
/// * 6to4 `2002:AABB:CCDD::/48` (RFC 3056), address in bits 16..48
///
/// Teredo (`2001::/32`) is deliberately not decoded; see [`classify_ip`].
#[must_use]
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = ip.to_bits();
    // Truncating casts pick the low 32 bits on purpose.
    let low32 = Ipv4Addr::from_bits(bits as u32);
    let high96 = bits >> 32;
    if high96 == 0xffff || high96 == 0xffff_0000 {
        Some(low32)
    } else if high96 == 0 {
        (bits > 1).then_some(low32)
    } else if in_v6(bits, NAT64_WELL_KNOWN) || in_v6(bits, NAT64_LOCAL_USE) {
        Some(low32)
    } else if in_v6(bits, SIX_TO_FOUR) {
        Some(Ipv4Addr::from_bits((bits >> 80) as u32))
    } else {
        None
    }
}

/// Host names refused under [`DestinationPolicy::strict`] because they name
/// the local machine or an internal service.
///
/// Matching is ASCII case-insensitive and ignores trailing dots. Blocked:
///
/// * any single-label name (no dot), such as `localhost`, `metadata`,
///   `instance-data` or `kubernetes`: search domains resolve those to
///   internal services, and no public endpoint is dotless;
/// * `localhost.localdomain`, `metadata.google.internal` (listed for
///   clarity; also covered below);
/// * names ending in `.localhost` (RFC 6761), `.local` (mDNS, and
///   Kubernetes `.cluster.local`), `.localdomain`, `.internal` (reserved for
///   private use, includes `metadata.google.internal` and
///   `*.ec2.internal`), and `.home.arpa` (RFC 8375).
///
/// This is defence in depth: any host name can resolve to a private
/// address, which is why [`check_ip`] must run on resolved addresses.
#[must_use]
pub fn is_blocked_hostname(host: &str) -> bool {
    const EXACT: [&str; 2] = ["localhost.localdomain", "metadata.google.internal"];
    const SUFFIXES: [&str; 5] = [
        ".localhost",
        ".local",
        ".localdomain",
        ".internal",
        ".home.arpa",
    ];

    let name = host.trim_end_matches('.').to_ascii_lowercase();
    if !name.contains('.') {
        return true;
    }
    EXACT.contains(&name.as_str()) || SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
}

// ---------------------------------------------------------------------------
// Range tables
// ---------------------------------------------------------------------------

type V4Net = (u32, u32);
type V6Net = (u128, u32);

const fn v4net(a: u8, b: u8, c: u8, d: u8, len: u32) -> V4Net {
    (Ipv4Addr::new(a, b, c, d).to_bits(), len)
}

const fn v6net(s: [u16; 8], len: u32) -> V6Net {
    (
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]).to_bits(),
        len,
    )
}

const fn in_v4(addr: u32, (net, len): V4Net) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    addr & mask == net & mask
}

const fn in_v6(addr: u128, (net, len): V6Net) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    addr & mask == net & mask
}

const V4_METADATA: [Ipv4Addr; 6] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(169, 254, 170, 23),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(168, 63, 129, 16),
    Ipv4Addr::new(192, 0, 0, 192),
];

/// Specific-first; the first match wins.
const V4_RANGES: [(V4Net, BlockedRange); 17] = [
    (v4net(0, 0, 0, 0, 32), BlockedRange::Unspecified),
    (v4net(255, 255, 255, 255, 32), BlockedRange::Broadcast),
    (v4net(0, 0, 0, 0, 8), BlockedRange::Reserved),
    (v4net(10, 0, 0, 0, 8), BlockedRange::Private),
    (v4net(100, 64, 0, 0, 10), BlockedRange::SharedCgnat),
    (v4net(127, 0, 0, 0, 8), BlockedRange::Loopback),
    (v4net(169, 254, 0, 0, 16), BlockedRange::LinkLocal),
    (v4net(172, 16, 0, 0, 12), BlockedRange::Private),
    (v4net(192, 0, 0, 0, 24), BlockedRange::Reserved),
    (v4net(192, 0, 2, 0, 24), BlockedRange::Documentation),
    (v4net(192, 88, 99, 0, 24), BlockedRange::Reserved),
    (v4net(192, 168, 0, 0, 16), BlockedRange::Private),
    (v4net(198, 18, 0, 0, 15), BlockedRange::Benchmarking),
    (v4net(198, 51, 100, 0, 24), BlockedRange::Documentation),
    (v4net(203, 0, 113, 0, 24), BlockedRange::Documentation),
    (v4net(224, 0, 0, 0, 4), BlockedRange::Multicast),
    (v4net(240, 0, 0, 0, 4), BlockedRange::Reserved),
];

const V6_METADATA: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254),
    Ipv6Addr::new(0xfd20, 0x00ce, 0, 0, 0, 0, 0, 0x0254),
];

const NAT64_WELL_KNOWN: V6Net = v6net([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
const NAT64_LOCAL_USE: V6Net = v6net([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48);
const SIX_TO_FOUR: V6Net = v6net([0x2002, 0, 0, 0, 0, 0, 0, 0], 16);
const GLOBAL_UNICAST: V6Net = v6net([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);
const IETF_PROTOCOL_ASSIGNMENTS: V6Net = v6net([0x2001, 0, 0, 0, 0, 0, 0, 0], 23);

/// Globally reachable sub-ranges of `2001::/23` (IANA special-purpose
/// registry): AMT, AS112-v6, ORCHIDv2, drone remote ID.
const IETF_GLOBAL: [V6Net; 4] = [
    v6net([0x2001, 0x3, 0, 0, 0, 0, 0, 0], 32),
    v6net([0x2001, 0x4, 0x112, 0, 0, 0, 0, 0], 48),
    v6net([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28),
    v6net([0x2001, 0x30, 0, 0, 0, 0, 0, 0], 28),
];

/// Specific-first; the first match wins. Checked after metadata, the
/// unspecified and loopback addresses and IPv4 embeddings.
const V6_RANGES: [(V6Net, BlockedRange); 9] = [
    (
        v6net([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
        BlockedRange::Multicast,
    ),
    (
        v6net([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        BlockedRange::LinkLocal,
    ),
    (
        v6net([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        BlockedRange::Private,
    ),
    (
        v6net([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        BlockedRange::UniqueLocal,
    ),
    (
        v6net([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        BlockedRange::Documentation,
    ),
    (
        v6net([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
        BlockedRange::Documentation,
    ),
    (
        v6net([0x2001, 0x2, 0, 0, 0, 0, 0, 0], 48),
        BlockedRange::Benchmarking,
    ),
    // Teredo: blocked, not decoded.
    (
        v6net([0x2001, 0, 0, 0, 0, 0, 0, 0], 32),
        BlockedRange::Reserved,
    ),
    (
        v6net([0x0100, 0, 0, 0, 0, 0, 0, 0], 64),
        BlockedRange::Reserved,
    ),
];

fn classify_v4(ip: Ipv4Addr) -> Option<BlockedRange> {
    if V4_METADATA.contains(&ip) {
        return Some(BlockedRange::CloudMetadata);
    }
    let bits = ip.to_bits();
    V4_RANGES
        .iter()
        .find(|(net, _)| in_v4(bits, *net))
        .map(|(_, range)| *range)
}

fn classify_v6(ip: Ipv6Addr) -> Option<BlockedRange> {
    if V6_METADATA.contains(&ip) {
        return Some(BlockedRange::CloudMetadata);
    }
    let bits = ip.to_bits();
    if bits == 0 {
        return Some(BlockedRange::Unspecified);
    }
    if bits == 1 {
        return Some(BlockedRange::Loopback);
    }
    if let Some(v4) = embedded_ipv4(ip) {
        let range = classify_v4(v4);
        // The local-use NAT64 prefix is itself not globally reachable.
        if range.is_none() && in_v6(bits, NAT64_LOCAL_USE) {
            return Some(BlockedRange::Private);
        }
        return range;
    }
    if let Some((_, range)) = V6_RANGES.iter().find(|(net, _)| in_v6(bits, *net)) {
        return Some(*range);
    }
    if in_v6(bits, IETF_PROTOCOL_ASSIGNMENTS) && !IETF_GLOBAL.iter().any(|net| in_v6(bits, *net)) {
        return Some(BlockedRange::Reserved);
    }
    if in_v6(bits, GLOBAL_UNICAST) {
        None
    } else {
        Some(BlockedRange::Reserved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use BlockedRange as R;
    use DestinationError as E;

    const STRICT: DestinationPolicy = DestinationPolicy::strict();
    const INSECURE: DestinationPolicy = DestinationPolicy::insecure();
    const HTTP_ONLY: DestinationPolicy = DestinationPolicy {
        allow_http: true,
        allow_private: false,
    };
    const PRIVATE_ONLY: DestinationPolicy = DestinationPolicy {
        allow_http: false,
        allow_private: true,
    };

    fn blocked(ip: &str, range: BlockedRange) -> Result<(), DestinationError> {
        Err(E::BlockedAddress {
            ip: ip.parse().unwrap(),
            range,
        })
    }

    fn rows() -> Vec<(String, DestinationPolicy, Result<(), DestinationError>)> {
        let long = format!("https://example.com/{}", "a".repeat(3000));
        let long_len = long.len();
        let padded = format!("https://example.com/{}", "\"".repeat(1000));
        let rows: Vec<(&str, DestinationPolicy, Result<(), DestinationError>)> = vec![
            // Accepted.
            ("https://example.com/hook?x=1", STRICT, Ok(())),
            ("https://hooks.example.com:8443/a/b", STRICT, Ok(())),
            ("https://8.8.8.8/", STRICT, Ok(())),
            ("https://[2606:4700::1111]/", STRICT, Ok(())),
            ("https://[64:ff9b::808:808]/", STRICT, Ok(())),
            ("https://[2002:808:808::1]/", STRICT, Ok(())),
            ("HTTPS://EXAMPLE.COM/", STRICT, Ok(())),
            ("https://example.com./", STRICT, Ok(())),
            ("http://example.com/", INSECURE, Ok(())),
            ("http://example.com/", HTTP_ONLY, Ok(())),
            ("http://127.0.0.1:9000/", INSECURE, Ok(())),
            ("https://localhost:8443/", INSECURE, Ok(())),
            ("https://localhost:8443/", PRIVATE_ONLY, Ok(())),
            ("https://10.0.0.1/", INSECURE, Ok(())),
            ("https://[fd12::1]/", INSECURE, Ok(())),
            // Integer / hex / octal / short IPv4 forms are loopback.
            (
                "http://2130706433/",
                HTTP_ONLY,
                blocked("127.0.0.1", R::Loopback),
            ),
            (
                "http://0x7f.1/",
                HTTP_ONLY,
                blocked("127.0.0.1", R::Loopback),
            ),
            (
                "http://127.1/",
                HTTP_ONLY,
                blocked("127.0.0.1", R::Loopback),
            ),
            (
                "https://017700000001/",
                STRICT,
                blocked("127.0.0.1", R::Loopback),
            ),
            (
                "https://0177.0.0.1/",
                STRICT,
                blocked("127.0.0.1", R::Loopback),
            ),
            (
                "https://127.0.0.1./",
                STRICT,
                blocked("127.0.0.1", R::Loopback),
            ),
            (
                "https://%31%32%37.0.0.1/",
                STRICT,
                blocked("127.0.0.1", R::Loopback),
            ),
            (
                "https://\u{ff11}\u{ff12}\u{ff17}.0.0.1/",
                STRICT,
                blocked("127.0.0.1", R::Loopback),
            ),
            // Embedded IPv4 in IPv6.
            (
                "https://[::ffff:127.0.0.1]/",
                STRICT,
                blocked("::ffff:127.0.0.1", R::Loopback),
            ),
            (
                "https://[::ffff:7f00:1]/",
                STRICT,
                blocked("::ffff:127.0.0.1", R::Loopback),
            ),
            (
                "https://[::127.0.0.1]/",
                STRICT,
                blocked("::127.0.0.1", R::Loopback),
            ),
            (
                "https://[64:ff9b::7f00:1]/",
                STRICT,
                blocked("64:ff9b::7f00:1", R::Loopback),
            ),
            (
                "https://[64:ff9b:1::a00:1]/",
                STRICT,
                blocked("64:ff9b:1::a00:1", R::Private),
            ),
            (
                "https://[64:ff9b:1::808:808]/",
                STRICT,
                blocked("64:ff9b:1::808:808", R::Private),
            ),
            (
                "https://[2002:7f00:1::]/",
                STRICT,
                blocked("2002:7f00:1::", R::Loopback),
            ),
            (
                "https://[2002:a9fe:a9fe::]/",
                STRICT,
                blocked("2002:a9fe:a9fe::", R::CloudMetadata),
            ),
            (
                "https://[::ffff:169.254.169.254]/",
                INSECURE,
                blocked("::ffff:a9fe:a9fe", R::CloudMetadata),
            ),
            (
                "https://[2001::1]/",
                STRICT,
                blocked("2001::1", R::Reserved),
            ),
            // Cloud metadata: before link-local, and never allowed.
            (
                "https://169.254.169.254/latest/meta-data",
                STRICT,
                blocked("169.254.169.254", R::CloudMetadata),
            ),
            (
                "http://169.254.169.254/latest/meta-data",
                INSECURE,
                blocked("169.254.169.254", R::CloudMetadata),
            ),
            (
                "https://[fd00:ec2::254]/",
                STRICT,
                blocked("fd00:ec2::254", R::CloudMetadata),
            ),
            (
                "https://[fd00:ec2::254]/",
                INSECURE,
                blocked("fd00:ec2::254", R::CloudMetadata),
            ),
            (
                "https://100.100.100.200/",
                STRICT,
                blocked("100.100.100.200", R::CloudMetadata),
            ),
            (
                "https://168.63.129.16/",
                STRICT,
                blocked("168.63.129.16", R::CloudMetadata),
            ),
            // Private and special ranges.
            (
                "https://100.64.0.1/",
                STRICT,
                blocked("100.64.0.1", R::SharedCgnat),
            ),
            ("https://10.0.0.1/", STRICT, blocked("10.0.0.1", R::Private)),
            (
                "https://172.16.5.4/",
                STRICT,
                blocked("172.16.5.4", R::Private),
            ),
            ("https://172.32.0.1/", STRICT, Ok(())),
            (
                "https://192.168.1.1/",
                STRICT,
                blocked("192.168.1.1", R::Private),
            ),
            (
                "https://169.254.1.1/",
                STRICT,
                blocked("169.254.1.1", R::LinkLocal),
            ),
            (
                "https://[fe80::1]/",
                STRICT,
                blocked("fe80::1", R::LinkLocal),
            ),
            (
                "https://[fc00::1]/",
                STRICT,
                blocked("fc00::1", R::UniqueLocal),
            ),
            (
                "https://0.0.0.0/",
                STRICT,
                blocked("0.0.0.0", R::Unspecified),
            ),
            (
                "https://0.0.0.0/",
                INSECURE,
                blocked("0.0.0.0", R::Unspecified),
            ),
            ("https://0/", STRICT, blocked("0.0.0.0", R::Unspecified)),
            ("https://[::]/", STRICT, blocked("::", R::Unspecified)),
            ("https://[::1]/", STRICT, blocked("::1", R::Loopback)),
            ("https://[::1]/", INSECURE, Ok(())),
            (
                "https://224.0.0.1/",
                STRICT,
                blocked("224.0.0.1", R::Multicast),
            ),
            (
                "https://224.0.0.1/",
                INSECURE,
                blocked("224.0.0.1", R::Multicast),
            ),
            (
                "https://[ff02::1]/",
                STRICT,
                blocked("ff02::1", R::Multicast),
            ),
            (
                "https://255.255.255.255/",
                STRICT,
                blocked("255.255.255.255", R::Broadcast),
            ),
            (
                "https://255.255.255.255/",
                INSECURE,
                blocked("255.255.255.255", R::Broadcast),
            ),
            (
                "https://192.0.2.10/",
                STRICT,
                blocked("192.0.2.10", R::Documentation),
            ),
            (
                "https://[2001:db8::1]/",
                STRICT,
                blocked("2001:db8::1", R::Documentation),
            ),
            (
                "https://198.18.0.1/",
                STRICT,
                blocked("198.18.0.1", R::Benchmarking),
            ),
            (
                "https://240.0.0.1/",
                STRICT,
                blocked("240.0.0.1", R::Reserved),
            ),
            (
                "https://240.0.0.1/",
                INSECURE,
                blocked("240.0.0.1", R::Reserved),
            ),
            // Userinfo.
            ("https://user:pw@example.com/", STRICT, Err(E::UserInfo)),
            ("https://user@example.com/", STRICT, Err(E::UserInfo)),
            ("https://:pw@example.com/", STRICT, Err(E::UserInfo)),
            ("https://user:pw@example.com/", INSECURE, Err(E::UserInfo)),
            // Schemes.
            (
                "ftp://example.com/",
                STRICT,
                Err(E::SchemeNotAllowed("ftp".into())),
            ),
            (
                "javascript:alert(1)",
                STRICT,
                Err(E::SchemeNotAllowed("javascript".into())),
            ),
            (
                "file:///etc/passwd",
                INSECURE,
                Err(E::SchemeNotAllowed("file".into())),
            ),
            (
                "gopher://example.com/",
                INSECURE,
                Err(E::SchemeNotAllowed("gopher".into())),
            ),
            (
                "ws://example.com/",
                INSECURE,
                Err(E::SchemeNotAllowed("ws".into())),
            ),
            ("http://example.com/", STRICT, Err(E::InsecureScheme)),
            ("http://example.com/", PRIVATE_ONLY, Err(E::InsecureScheme)),
            // Host names.
            (
                "https://localhost:8443/",
                STRICT,
                Err(E::BlockedHostname("localhost".into())),
            ),
            (
                "https://LOCALHOST./",
                STRICT,
                Err(E::BlockedHostname("localhost.".into())),
            ),
            (
                "https://foo.localhost/",
                STRICT,
                Err(E::BlockedHostname("foo.localhost".into())),
            ),
            (
                "https://localhost.localdomain/",
                STRICT,
                Err(E::BlockedHostname("localhost.localdomain".into())),
            ),
            (
                "https://metadata.google.internal/",
                STRICT,
                Err(E::BlockedHostname("metadata.google.internal".into())),
            ),
            (
                "https://metadata/",
                STRICT,
                Err(E::BlockedHostname("metadata".into())),
            ),
            (
                "https://instance-data/",
                STRICT,
                Err(E::BlockedHostname("instance-data".into())),
            ),
            (
                "https://printer.local/",
                STRICT,
                Err(E::BlockedHostname("printer.local".into())),
            ),
            (
                "https://api.default.svc.cluster.local/",
                STRICT,
                Err(E::BlockedHostname("api.default.svc.cluster.local".into())),
            ),
            (
                "https://router.home.arpa/",
                STRICT,
                Err(E::BlockedHostname("router.home.arpa".into())),
            ),
            // Structure.
            ("https://example.com/hook#frag", STRICT, Err(E::Fragment)),
            ("https://example.com/hook#", STRICT, Err(E::Fragment)),
            ("https://", STRICT, Err(E::MissingHost)),
            ("ftp://", STRICT, Err(E::MissingHost)),
            ("https://:443/", STRICT, Err(E::MissingHost)),
            (
                "not a url",
                STRICT,
                Err(E::InvalidUrl("relative URL without a base".into())),
            ),
            (
                "",
                STRICT,
                Err(E::InvalidUrl("relative URL without a base".into())),
            ),
            (
                "https://exa mple.com/",
                STRICT,
                Err(E::InvalidUrl("invalid international domain name".into())),
            ),
            (
                "https://example.com:99999/",
                STRICT,
                Err(E::InvalidUrl("invalid port number".into())),
            ),
            (
                "https://1.2.3.4.5/",
                STRICT,
                Err(E::InvalidUrl("invalid IPv4 address".into())),
            ),
            (
                "https://[::1/",
                STRICT,
                Err(E::InvalidUrl("invalid IPv6 address".into())),
            ),
            (
                &long,
                STRICT,
                Err(E::TooLong {
                    len: long_len,
                    max: MAX_URL_LEN,
                }),
            ),
            (
                &padded,
                STRICT,
                Err(E::TooLong {
                    len: 20 + 3 * 1000,
                    max: MAX_URL_LEN,
                }),
            ),
        ];
        rows.into_iter()
            .map(|(input, policy, expected)| (input.to_owned(), policy, expected))
            .collect()
    }

    #[test]
    fn rule_table() {
        let rows = rows();
        assert!(rows.len() >= 30);
        let mut failures = Vec::new();
        for (input, policy, expected) in &rows {
            let got = check_url(input, policy).map(|_| ());
            if &got != expected {
                failures.push(format!(
                    "{input:?} with {policy:?}: expected {expected:?}, got {got:?}"
                ));
            }
            if let Err(err) = &got {
                let msg = err.to_string();
                assert!(
                    msg.contains(&format!("(rule: {})", err.rule())),
                    "{msg:?} does not name its rule"
                );
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn ok_returns_parsed_url() {
        let url = check_url("https://Example.com:443/hook?x=1", &STRICT).unwrap();
        assert_eq!(url.as_str(), "https://example.com/hook?x=1");
        let url = check_url("http://0x7f.1:9000/", &INSECURE).unwrap();
        assert_eq!(url.host_str(), Some("127.0.0.1"));
    }

    #[test]
    fn messages() {
        let err = check_url("https://127.0.0.1/", &STRICT).unwrap_err();
        assert_eq!(
            err.to_string(),
            "destination 127.0.0.1 is in the loopback range (rule: blocked_address); \
             use a public https endpoint or allow private destinations for local development"
        );
        let err = check_url("https://169.254.169.254/", &STRICT).unwrap_err();
        assert!(err.to_string().contains("never allowed"), "{err}");
        for input in [
            "https://user:s3cr3t@example.com/",
            "https://user:s3cr3t@127.0.0.1/",
            "ftp://user:s3cr3t@example.com/",
            "http://user:s3cr3t@example.com/",
            "https://user:s3cr3t@/",
            "https://user:s3cr3t@localhost/",
        ] {
            for policy in [STRICT, INSECURE] {
                let err = check_url(input, &policy).unwrap_err();
                assert!(!err.to_string().contains("s3cr3t"), "{input}: {err}");
                assert!(!format!("{err:?}").contains("s3cr3t"), "{input}: {err:?}");
            }
        }
    }

    #[test]
    fn codes_are_unique_and_stable() {
        let codes: Vec<_> = BlockedRange::ALL.iter().map(BlockedRange::rule).collect();
        let mut dedup = codes.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(codes.len(), dedup.len());
        assert_eq!(R::Loopback.rule(), "loopback");
        assert_eq!(R::CloudMetadata.to_string(), "cloud metadata");
        assert_eq!(E::UserInfo.rule(), "userinfo");
        assert_eq!(E::SchemeNotAllowed("ftp".into()).rule(), "scheme");
    }

    #[test]
    fn policies() {
        assert_eq!(DestinationPolicy::default(), DestinationPolicy::strict());
        assert_eq!(
            DestinationPolicy::strict(),
            DestinationPolicy {
                allow_http: false,
                allow_private: false
            }
        );
        assert_eq!(
            DestinationPolicy::insecure(),
            DestinationPolicy {
                allow_http: true,
                allow_private: true
            }
        );
    }

    #[test]
    fn long_scheme_is_truncated() {
        let input = format!("{}://example.com/", "a".repeat(200));
        match check_url(&input, &STRICT) {
            Err(E::SchemeNotAllowed(s)) => assert_eq!(s.len(), MAX_ECHOED_SCHEME),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn classify_samples() {
        let cases: &[(&str, Option<BlockedRange>)] = &[
            ("1.1.1.1", None),
            ("172.15.255.255", None),
            ("172.31.255.255", Some(R::Private)),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("100.127.255.255", Some(R::SharedCgnat)),
            ("169.254.170.2", Some(R::CloudMetadata)),
            ("0.1.2.3", Some(R::Reserved)),
            ("192.0.0.8", Some(R::Reserved)),
            ("198.19.255.255", Some(R::Benchmarking)),
            ("198.20.0.0", None),
            ("239.255.255.255", Some(R::Multicast)),
            ("255.255.255.254", Some(R::Reserved)),
            ("::0.0.0.2", Some(R::Reserved)),
            ("::ffff:0:a00:1", Some(R::Private)),
            ("::ffff:8.8.8.8", None),
            ("64:ff9b::8.8.8.8", None),
            ("64:ff9b:0:1::", Some(R::Reserved)),
            ("100::1", Some(R::Reserved)),
            ("fec0::1", Some(R::Private)),
            ("fd20:ce::254", Some(R::CloudMetadata)),
            ("2001:2::1", Some(R::Benchmarking)),
            ("2001:3::1", None),
            ("2001:10::1", Some(R::Reserved)),
            ("3fff::1", Some(R::Documentation)),
            ("2a00:1450::1", None),
            ("4000::1", Some(R::Reserved)),
            ("5f00::1", Some(R::Reserved)),
        ];
        for (ip, expected) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(classify_ip(ip), *expected, "{ip}");
        }
    }

    #[test]
    fn check_ip_policy() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(check_ip(lo, &STRICT).is_err());
        assert!(check_ip(lo, &INSECURE).is_ok());
        for range in BlockedRange::ALL {
            // Every range's always-blocked flag is honoured by check_ip.
            let sample: IpAddr = match range {
                R::Unspecified => "0.0.0.0",
                R::Loopback => "127.0.0.2",
                R::Private => "10.1.2.3",
                R::SharedCgnat => "100.64.1.1",
                R::LinkLocal => "fe80::2",
                R::CloudMetadata => "169.254.169.254",
                R::UniqueLocal => "fd00::1",
                R::Multicast => "ff05::2",
                R::Broadcast => "255.255.255.255",
                R::Documentation => "203.0.113.9",
                R::Benchmarking => "198.18.1.1",
                R::Reserved => "240.1.1.1",
            }
            .parse()
            .unwrap();
            assert_eq!(classify_ip(sample), Some(range));
            assert!(check_ip(sample, &STRICT).is_err());
            assert_eq!(
                check_ip(sample, &INSECURE).is_err(),
                range.is_always_blocked(),
                "{range:?}"
            );
        }
    }

    fn v4_embeddings(v4: Ipv4Addr) -> Vec<Ipv6Addr> {
        let b = u128::from(v4.to_bits());
        vec![
            v4.to_ipv6_mapped(),
            Ipv6Addr::from_bits((0xffff_0000u128 << 32) | b),
            Ipv6Addr::from_bits(NAT64_WELL_KNOWN.0 | b),
            Ipv6Addr::from_bits(SIX_TO_FOUR.0 | (b << 80) | 0xdead_beef),
        ]
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_strings(s in any::<String>()) {
            for policy in [STRICT, INSECURE, HTTP_ONLY, PRIVATE_ONLY] {
                let _ = check_url(&s, &policy).map_err(|e| e.to_string());
            }
            let _ = is_blocked_hostname(&s);
        }

        #[test]
        fn never_panics_on_url_like_strings(
            s in "(https?|ftp|[a-z]{1,6})://([a-z0-9:@%._\\[\\]-]{0,40})(:[0-9]{0,6})?(/[ -~]{0,20})?(#[a-z]{0,3})?"
        ) {
            for policy in [STRICT, INSECURE] {
                match check_url(&s, &policy) {
                    Ok(url) => {
                        prop_assert!(url.scheme() == "https" || policy.allow_http);
                        prop_assert!(url.username().is_empty() && url.password().is_none());
                        prop_assert!(url.fragment().is_none());
                        let ip = match url.host() {
                            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                            _ => None,
                        };
                        if let Some(ip) = ip {
                            prop_assert!(check_ip(ip, &policy).is_ok());
                            if !policy.allow_private {
                                prop_assert_eq!(classify_ip(ip), None);
                            }
                        }
                    }
                    Err(e) => prop_assert!(e.to_string().contains(e.rule())),
                }
            }
        }

        #[test]
        fn loopback_v4_plain_and_mapped(a in any::<u8>(), b in any::<u8>(), c in any::<u8>()) {
            let v4 = Ipv4Addr::new(127, a, b, c);
            prop_assert_eq!(classify_ip(IpAddr::V4(v4)), Some(R::Loopback));
            prop_assert_eq!(classify_ip(IpAddr::V6(v4.to_ipv6_mapped())), Some(R::Loopback));
            for v6 in v4_embeddings(v4) {
                prop_assert_eq!(classify_ip(IpAddr::V6(v6)), Some(R::Loopback), "{}", v6);
            }
            let url = format!("https://[::ffff:{v4}]/");
            prop_assert_eq!(
                check_url(&url, &STRICT).map(|_| ()),
                Err(E::BlockedAddress { ip: IpAddr::V6(v4.to_ipv6_mapped()), range: R::Loopback })
            );
        }

        #[test]
        fn embeddings_classify_like_embedded(bits in any::<u32>()) {
            let v4 = Ipv4Addr::from_bits(bits);
            let expected = classify_ip(IpAddr::V4(v4));
            for v6 in v4_embeddings(v4) {
                prop_assert_eq!(embedded_ipv4(v6), Some(v4));
                prop_assert_eq!(classify_ip(IpAddr::V6(v6)), expected, "{}", v6);
            }
        }

        #[test]
        fn integer_host_is_same_as_dotted(bits in any::<u32>()) {
            let v4 = Ipv4Addr::from_bits(bits);
            let a = check_url(&format!("https://{bits}/"), &STRICT).map(|u| u.host_str().map(str::to_owned));
            let b = check_url(&format!("https://{v4}/"), &STRICT).map(|u| u.host_str().map(str::to_owned));
            prop_assert_eq!(a, b);
        }
    }
}

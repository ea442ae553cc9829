//! Link URLs: parsing and `Display`, which give each other back (`parse(display(parse(url)))`
//! is `parse(url)` for every URL that parses).
//!
//! `SCHEME://TARGET[?KEY=VALUE[&KEY=VALUE]…]`, where TARGET is `HOST:PORT` (`HOST` an IPv4
//! address, a bracketed IPv6 address with an optional numeric zone, `[fe80::1%2]`, or a
//! host name) or, for `tap://`, an interface name, or, for `fd://`, a descriptor number. A `vxlan://` port may be left out
//! (4789); so may the brackets of an IPv6 address without a port.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::str::FromStr;
use std::time::Duration;

use super::{LengthPrefix, LinkSpec, VXLAN_PORT};

/// Where a link's frames go: an address, or a name resolved when the link opens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Remote {
    /// An IP address and port.
    Addr(SocketAddr),
    /// A host name and port.
    Name {
        /// The host name (letters, digits, `-`, `_` and `.`).
        host: String,
        /// The port.
        port: u16,
    },
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remote::Addr(addr) => write!(f, "{addr}"),
            Remote::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// A link URL that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid link URL {url:?}: {reason}")]
pub struct ParseLinkError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkSpec::Udp { remote, bind } => {
                write!(f, "udp://{remote}")?;
                if let Some(b) = bind {
                    write!(f, "?bind={b}")?;
                }
                Ok(())
            }
            LinkSpec::Tcp {
                remote,
                len,
                user_timeout,
            } => {
                let n = match len {
                    LengthPrefix::U16 => 2,
                    LengthPrefix::U32 => 4,
                };
                write!(f, "tcp://{remote}?len={n}")?;
                if let Some(t) = user_timeout {
                    write!(f, "&user_timeout_ms={}", t.as_millis())?;
                }
                Ok(())
            }
            LinkSpec::Vxlan { remote, vni, bind } => {
                write!(f, "vxlan://{remote}?vni={vni}")?;
                if let Some(b) = bind {
                    write!(f, "&bind={b}")?;
                }
                Ok(())
            }
            LinkSpec::Tap { name } => write!(f, "tap://{name}"),
            LinkSpec::Fd(fd) => write!(f, "fd://{}", fd.number()),
            LinkSpec::Channel(_) | LinkSpec::Batch(_) => write!(f, "channel:"),
        }
    }
}

impl fmt::Debug for LinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for LinkSpec {
    type Err = ParseLinkError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        parse(url).map_err(|reason| ParseLinkError {
            url: url.to_owned(),
            reason,
        })
    }
}

fn parse(url: &str) -> Result<LinkSpec, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("expected SCHEME://…, SCHEME one of udp, tcp, vxlan, tap, fd")?;
    let (target, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut params = Params::parse(query)?;
    let spec = match scheme {
        "udp" => LinkSpec::Udp {
            remote: remote(target, None)?,
            bind: params.take("bind").map(bind).transpose()?,
        },
        "tcp" => LinkSpec::Tcp {
            remote: remote(target, None)?,
            len: match params.take("len") {
                None | Some("2") => LengthPrefix::U16,
                Some("4") => LengthPrefix::U32,
                Some(other) => return Err(format!("len={other}: expected 2 or 4")),
            },
            user_timeout: params
                .take("user_timeout_ms")
                .map(|v| {
                    digits::<u32>(v)
                        .map(|ms| Duration::from_millis(u64::from(ms)))
                        .ok_or_else(|| format!("user_timeout_ms={v}: expected 0..4294967295"))
                })
                .transpose()?,
        },
        "vxlan" => {
            let vni = params.take("vni").ok_or("missing ?vni=N")?;
            let vni = digits::<u32>(vni)
                .filter(|v| *v < (1 << 24))
                .ok_or_else(|| format!("vni={vni}: expected 0..16777215"))?;
            LinkSpec::Vxlan {
                remote: remote(target, Some(VXLAN_PORT))?,
                vni,
                bind: params.take("bind").map(bind).transpose()?,
            }
        }
        "tap" => LinkSpec::Tap {
            name: interface_name(target)?,
        },
        "fd" => LinkSpec::Fd(super::FdSpec::from_number(
            digits::<i32>(target)
                .ok_or_else(|| format!("fd://{target}: expected a descriptor number"))?,
        )),
        other => {
            return Err(format!(
                "unknown scheme {other:?}: expected udp, tcp, vxlan, tap or fd"
            ))
        }
    };
    match params.0.first() {
        Some((k, _)) => Err(format!("unknown query parameter {k:?}")),
        None => Ok(spec),
    }
}

/// The `KEY=VALUE` pairs of a query, each key at most once.
struct Params<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Params<'a> {
    fn parse(query: &'a str) -> Result<Self, String> {
        let mut params: Vec<(&str, &str)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("query parameter {pair:?} is not KEY=VALUE"))?;
            if params.iter().any(|(seen, _)| *seen == k) {
                return Err(format!("query parameter {k:?} given twice"));
            }
            params.push((k, v));
        }
        Ok(Params(params))
    }

    fn take(&mut self, key: &str) -> Option<&'a str> {
        let i = self.0.iter().position(|(k, _)| *k == key)?;
        Some(self.0.remove(i).1)
    }
}

/// A number written in decimal digits only (no sign, no spaces).
fn digits<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn port(s: &str) -> Result<u16, String> {
    digits(s).ok_or_else(|| format!("invalid port {s:?}: expected 0..65535"))
}

/// `bind=ADDR:PORT` or `bind=PORT` (every IPv4 address).
fn bind(v: &str) -> Result<SocketAddr, String> {
    v.parse::<SocketAddr>()
        .ok()
        .or_else(|| digits(v).map(|p| SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), p)))
        .ok_or_else(|| format!("bind={v}: expected ADDR:PORT or PORT"))
}

/// `HOST:PORT`, `[IPV6]:PORT`, `[IPV6%ZONE]:PORT`; without the port (and then without
/// the brackets too) when there is a default.
fn remote(target: &str, default_port: Option<u16>) -> Result<Remote, String> {
    let need_port = |p: Option<u16>| p.or(default_port).ok_or("missing :PORT".to_owned());
    if target.is_empty() {
        return Err("missing HOST:PORT".into());
    }
    if let Some(inner) = target.strip_prefix('[') {
        let (inside, after) = inner
            .split_once(']')
            .ok_or("unclosed '[': expected [IPV6]:PORT")?;
        let port =
            match after {
                "" => need_port(None)?,
                _ => port(after.strip_prefix(':').ok_or_else(|| {
                    format!("unexpected {after:?} after ']': expected [IPV6]:PORT")
                })?)?,
            };
        return Ok(Remote::Addr(SocketAddr::V6(ipv6_in_brackets(
            inside, port,
        )?)));
    }
    if let Ok(ip) = target.parse::<Ipv6Addr>() {
        let port = need_port(None)
            .map_err(|_| "missing :PORT (an IPv6 address with a port goes in brackets)")?;
        return Ok(Remote::Addr(SocketAddr::new(ip.into(), port)));
    }
    let (host, port) = match target.rsplit_once(':') {
        Some((host, p)) => (host, need_port(Some(port(p)?))?),
        None => (target, need_port(None)?),
    };
    if host.contains(':') {
        return Err(format!(
            "invalid host {host:?}: an IPv6 address with a port goes in brackets"
        ));
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(Remote::Addr(SocketAddr::new(IpAddr::V4(ip), port)));
    }
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !valid {
        return Err(format!(
            "invalid host {host:?}: expected an IP address or a host name"
        ));
    }
    Ok(Remote::Name {
        host: host.to_owned(),
        port,
    })
}

/// The address inside `[…]`, with an optional numeric zone (`fe80::1%2`).
fn ipv6_in_brackets(inside: &str, port: u16) -> Result<SocketAddrV6, String> {
    let bad = || format!("invalid IPv6 address {inside:?} in brackets");
    let (ip, zone) = match inside.split_once('%') {
        Some((ip, zone)) => (ip, Some(digits::<u32>(zone).ok_or_else(bad)?)),
        None => (inside, None),
    };
    let ip = ip.parse::<Ipv6Addr>().map_err(|_| bad())?;
    Ok(SocketAddrV6::new(ip, port, 0, zone.unwrap_or(0)))
}

/// A name the kernel takes for an interface: 1 to 15 bytes, no `/`, `:`, white space
/// or NUL, not `.` or `..`.
fn interface_name(name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == 0 || b == b'/' || b == b':' || b.is_ascii_whitespace());
    if valid {
        Ok(name.to_owned())
    } else {
        Err("expected tap://NAME, NAME 1 to 15 bytes without '/', ':' or spaces".into())
    }
}

#[cfg(test)]
mod tests;

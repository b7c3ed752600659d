//! `host:port`, as config keys and command-line flags give broker addresses.

/// `broker` split into host and port; the host may be a name, an IPv4 address or a
/// bracketed IPv6 address (`[::1]:1883`, brackets removed).
pub fn host_port(addr: &str) -> Result<(String, u16), AddrError> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| AddrError(addr.to_string()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match port.parse::<u16>() {
        Ok(port) if !host.is_empty() => Ok((host.to_string(), port)),
        _ => Err(AddrError(addr.to_string())),
    }
}

/// The host part of `host:port` (the whole string when it has no port).
pub fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(h, _)| h)
}

/// A listen address: `ip:port`, or `localhost:port` (which means 127.0.0.1: a listener that
/// must be reachable from this machine only).
pub fn listen_addr(addr: &str) -> Result<std::net::SocketAddr, AddrError> {
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    match host_port(addr) {
        Ok((host, port)) if host.eq_ignore_ascii_case("localhost") => {
            Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        }
        _ => Err(AddrError(addr.to_string())),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrError(pub String);

impl std::fmt::Display for AddrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "'{}' is not host:port", self.0)
    }
}

impl std::error::Error for AddrError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_names_addresses_and_bracketed_ipv6() {
        assert_eq!(host_port("broker:1883").unwrap(), ("broker".into(), 1883));
        assert_eq!(host_port("[::1]:8883").unwrap(), ("::1".into(), 8883));
        assert!(host_port("broker").is_err());
        assert!(host_port(":1883").is_err());
        assert!(host_port("broker:99999").is_err());
        assert_eq!(host_of("10.0.0.1:9092"), "10.0.0.1");
    }

    #[test]
    fn listen_addresses_take_localhost_as_loopback() {
        assert_eq!(
            listen_addr("localhost:1883").unwrap().to_string(),
            "127.0.0.1:1883"
        );
        assert_eq!(listen_addr("[::1]:1883").unwrap().to_string(), "[::1]:1883");
        assert!(listen_addr("example.com:1883").is_err());
        assert!(listen_addr("localhost").is_err());
    }
}

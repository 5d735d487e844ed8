//! Which address a request comes from, for the login limiter and the login's audit record.
//!
//! Behind a proxy (a Kubernetes ingress, a load balancer speaking HTTP) every connection comes
//! from the proxy, so counting failed logins per connection address would put every user into
//! one budget: one attacker's failures would lock everyone out. The proxy says who its client
//! was in `X-Forwarded-For`, but any client can send that header too, so it is believed only
//! from the proxies named in `TRUSTED_PROXIES` (comma-separated addresses or CIDR blocks; unset,
//! no one is trusted and the header is ignored). Each trusted proxy appends the address it saw,
//! so the list is read from the right: the first address that is not a trusted proxy is the
//! client. Anything to its left was written by that client and is not believed.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;
use service_kit::config::{ConfigError, optional};

#[derive(Debug, Clone, Default)]
pub struct ClientAddress {
    trusted: Vec<IpNet>,
}

impl ClientAddress {
    /// `TRUSTED_PROXIES` from the environment; a bad entry stops the service naming it.
    pub fn from_env() -> Result<Self, ConfigError> {
        match optional("TRUSTED_PROXIES") {
            Some(list) => Self::parse(&list),
            None => Ok(Self::default()),
        }
    }

    pub fn parse(list: &str) -> Result<Self, ConfigError> {
        let trusted = list
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| {
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError::new(
                            "TRUSTED_PROXIES",
                            format!("{e:?} is neither an IP address nor a CIDR block"),
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { trusted })
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the connection's, or, when that is a trusted proxy, what the
    /// proxies' `X-Forwarded-For` entries say.
    pub fn of(&self, req: &HttpRequest) -> Option<IpAddr> {
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .collect();
        self.resolve(req.peer_addr().map(|a| a.ip()), &forwarded.join(","))
    }

    fn resolve(&self, peer: Option<IpAddr>, forwarded_for: &str) -> Option<IpAddr> {
        let mut client = peer?;
        if !self.is_trusted(client) {
            return Some(client);
        }
        for entry in forwarded_for.rsplit(',').map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            // Unreadable (`unknown`, garbage): nothing further left can be believed; the last
            // trusted hop is the best known.
            let Ok(ip) = entry.parse::<IpAddr>() else {
                return Some(client);
            };
            client = ip.to_canonical();
            if !self.is_trusted(client) {
                return Some(client);
            }
        }
        Some(client)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = ClientAddress::default();
        assert_eq!(
            none.resolve(Some(ip("203.0.113.9")), "198.51.100.1"),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_address_from_the_right_is_the_client() {
        let proxies = ClientAddress::parse("10.0.0.0/8, 192.168.1.7").unwrap();
        // ingress 10.1.2.3 saw 198.51.100.1; the client prepended a lie.
        assert_eq!(
            proxies.resolve(Some(ip("10.1.2.3")), "1.2.3.4, 198.51.100.1"),
            Some(ip("198.51.100.1"))
        );
        // two trusted hops
        assert_eq!(
            proxies.resolve(Some(ip("10.1.2.3")), "198.51.100.1, 192.168.1.7"),
            Some(ip("198.51.100.1"))
        );
        // a direct client is not a proxy: its header is not believed
        assert_eq!(
            proxies.resolve(Some(ip("203.0.113.9")), "198.51.100.1"),
            Some(ip("203.0.113.9"))
        );
        // a proxy that sent no header, or garbage
        assert_eq!(
            proxies.resolve(Some(ip("10.1.2.3")), ""),
            Some(ip("10.1.2.3"))
        );
        assert_eq!(
            proxies.resolve(Some(ip("10.1.2.3")), "unknown"),
            Some(ip("10.1.2.3"))
        );
        // IPv4-mapped peers count as their IPv4 address
        assert_eq!(
            proxies.resolve(Some(ip("::ffff:10.1.2.3")), "198.51.100.1"),
            Some(ip("198.51.100.1"))
        );
    }

    #[test]
    fn a_bad_entry_names_the_setting() {
        let e = ClientAddress::parse("10.0.0.0/8,ingress").unwrap_err();
        assert_eq!(e.name, "TRUSTED_PROXIES");
    }
}

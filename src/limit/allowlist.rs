//! [`IpAllowlist`]: the networks a token may be used from.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;

use super::LimitError;

/// Most networks in one allowlist.
const MAX_NETWORKS: usize = 64;

/// The networks (IPv4 and IPv6 CIDR ranges) a token may be used from.
///
/// Its text form lists networks separated by commas or spaces:
/// `203.0.113.0/24, 2001:db8::/32`. A bare address means that address
/// alone (`/32` or `/128`). A network with host bits set (`10.0.0.1/8`) is
/// refused rather than guessed, and so are IPv4-mapped IPv6 ranges: write
/// IPv4 ranges as IPv4 (an IPv4-mapped client address counts as IPv4).
/// The list is kept sorted and without duplicates, so equal lists print
/// alike.
///
/// ```
/// use tower_pat::limit::IpAllowlist;
///
/// let office: IpAllowlist = "203.0.113.0/24, 2001:db8::/32".parse().unwrap();
/// assert!(office.allows("203.0.113.9".parse().unwrap()));
/// assert!(office.allows("::ffff:203.0.113.9".parse().unwrap()));
/// assert!(!office.allows("198.51.100.1".parse().unwrap()));
///
/// let one: IpAllowlist = "203.0.113.9".parse().unwrap();
/// assert!(one.is_within(&office)); // a narrowing
/// assert!(!office.is_within(&one)); // a widening
/// assert!("10.0.0.1/8".parse::<IpAllowlist>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IpAllowlist(Arc<[IpNet]>);

impl IpAllowlist {
    /// An allowlist of `networks` (at least one, at most 64).
    pub fn new<I: IntoIterator<Item = IpNet>>(networks: I) -> Result<Self, LimitError> {
        let mut nets: Vec<IpNet> = networks.into_iter().collect();
        if nets.is_empty() {
            return Err(LimitError::Allowlist(
                "an allowlist needs at least one network".into(),
            ));
        }
        for net in &nets {
            check_network(net)?;
        }
        nets.sort();
        nets.dedup();
        if nets.len() > MAX_NETWORKS {
            return Err(LimitError::Allowlist(format!(
                "an allowlist has at most {MAX_NETWORKS} networks"
            )));
        }
        Ok(Self(nets.into()))
    }

    /// The networks, sorted.
    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }

    /// Whether `ip` is in one of the networks (an IPv4-mapped IPv6 address
    /// counts as the IPv4 address it maps).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = crate::transport::canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether every network of this list lies inside `other`: whether
    /// replacing `other` with this list narrows it (or keeps it).
    pub fn is_within(&self, other: &IpAllowlist) -> bool {
        self.0
            .iter()
            .all(|mine| other.0.iter().any(|theirs| theirs.contains(mine)))
    }

    /// Whether a token restricted to this list may be given `new`
    /// instead: a list within this one. `None` (any address) is a widening.
    pub fn may_become(&self, new: Option<&IpAllowlist>) -> bool {
        new.is_some_and(|new| new.is_within(self))
    }
}

fn check_network(net: &IpNet) -> Result<(), LimitError> {
    if net.trunc() != *net {
        return Err(LimitError::Allowlist(format!(
            "{net} has host bits set; the network is {}",
            net.trunc()
        )));
    }
    if let IpNet::V6(v6) = net {
        if v6.addr().to_ipv4_mapped().is_some() && v6.prefix_len() >= 96 {
            return Err(LimitError::Allowlist(format!(
                "{net} is an IPv4-mapped range: write it as IPv4"
            )));
        }
    }
    Ok(())
}

impl FromStr for IpAllowlist {
    type Err = LimitError;

    fn from_str(s: &str) -> Result<Self, LimitError> {
        let mut nets = Vec::new();
        for part in s
            .split([',', ' ', '\t', '\n', '\r'])
            .filter(|p| !p.is_empty())
        {
            if part.len() > 64 {
                return Err(LimitError::Allowlist(
                    "a network is at most 64 characters".into(),
                ));
            }
            let net = match part.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => match part.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => {
                        let shown: String = part.chars().filter(|c| c.is_ascii_graphic()).collect();
                        return Err(LimitError::Allowlist(format!(
                            "{shown:?} is not an IP address or CIDR network"
                        )));
                    }
                },
            };
            nets.push(net);
            if nets.len() > MAX_NETWORKS {
                return Err(LimitError::Allowlist(format!(
                    "an allowlist has at most {MAX_NETWORKS} networks"
                )));
            }
        }
        Self::new(nets)
    }
}

impl fmt::Display for IpAllowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, net) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            fmt::Display::fmt(net, f)?;
        }
        Ok(())
    }
}

impl fmt::Debug for IpAllowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpAllowlist({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> IpAllowlist {
        s.parse().unwrap()
    }

    #[test]
    fn text_form_is_canonical() {
        let l = list("2001:db8::/32 203.0.113.0/24,203.0.113.0/24, 198.51.100.7");
        assert_eq!(
            l.to_string(),
            "198.51.100.7/32, 203.0.113.0/24, 2001:db8::/32"
        );
        assert_eq!(list(&l.to_string()), l);
    }

    #[test]
    fn membership_ipv4_ipv6_and_mapped() {
        let l = list("203.0.113.0/24, 2001:db8::/32");
        for ok in [
            "203.0.113.0",
            "203.0.113.255",
            "::ffff:203.0.113.1",
            "2001:db8::1",
            "2001:db8:ffff::",
        ] {
            assert!(l.allows(ok.parse().unwrap()), "{ok}");
        }
        for no in [
            "203.0.114.0",
            "198.51.100.1",
            "2001:db9::1",
            "::203.0.113.1",
            "::1",
            "127.0.0.1",
        ] {
            assert!(!l.allows(no.parse().unwrap()), "{no}");
        }
    }

    #[test]
    fn narrowing_and_widening() {
        let wide = list("10.0.0.0/8, 2001:db8::/32");
        assert!(list("10.1.0.0/16").is_within(&wide));
        assert!(list("10.1.0.0/16, 2001:db8:1::/48").is_within(&wide));
        assert!(wide.is_within(&wide));
        assert!(!list("10.0.0.0/7").is_within(&wide));
        assert!(!list("10.1.0.0/16, 192.0.2.1").is_within(&wide));
        assert!(!wide.is_within(&list("10.1.0.0/16")));
        assert!(wide.may_become(Some(&list("10.1.0.0/16"))));
        assert!(!wide.may_become(Some(&list("10.0.0.0/7"))));
        assert!(!wide.may_become(None), "lifting the list widens it");
    }

    #[test]
    fn nonsense_is_refused() {
        for text in [
            "",
            " , ",
            "10.0.0.1/8",
            "10.0.0.0/33",
            "2001:db8::1/32",
            "::ffff:10.0.0.0/104",
            "host.example",
            "10.0.0",
            "10.0.0.0/8/8",
            "10.0.0.0/-1",
            "[::1]",
            "1.2.3.4:80",
        ] {
            assert!(text.parse::<IpAllowlist>().is_err(), "{text:?} parsed");
        }
        let many: Vec<String> = (0..65).map(|i| format!("10.0.{i}.0/24")).collect();
        assert!(many.join(",").parse::<IpAllowlist>().is_err());
        assert!(many[..64].join(",").parse::<IpAllowlist>().is_ok());
    }
}

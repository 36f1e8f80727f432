//! The URLs a server is reached at: one builder for the CLI banner, the desktop status,
//! Settings' answer and the doctor. IPv6 addresses go in brackets; a server bound to an
//! unspecified address (`0.0.0.0`, `::`) is shown at loopback, which always reaches it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Where a server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    addr: SocketAddr,
}

impl Urls {
    /// The URLs of a server listening on `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        let ip = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Self {
            addr: SocketAddr::new(ip, addr.port()),
        }
    }

    /// The address a client connects to (loopback for an unspecified bind).
    pub fn connect_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:8000`.
    pub fn http(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:8000/ws/echo/` for `path` (which starts with `/`).
    pub fn ws(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// The publish API.
    pub fn publish(&self) -> String {
        format!("{}/_sockpit/api/publish", self.http())
    }

    /// The UI login URL, which sets the session cookie (Jupyter style).
    pub fn login(&self, api_key: &str) -> String {
        format!("{}/_sockpit/login?key={api_key}", self.http())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_for_unspecified_and_brackets_for_v6() {
        let u = Urls::new("0.0.0.0:8000".parse().unwrap());
        assert_eq!(u.http(), "http://127.0.0.1:8000");
        assert_eq!(u.ws("/ws/echo/"), "ws://127.0.0.1:8000/ws/echo/");
        let u = Urls::new("[::]:8000".parse().unwrap());
        assert_eq!(u.http(), "http://[::1]:8000");
        let u = Urls::new("[::1]:9000".parse().unwrap());
        assert_eq!(u.login("k"), "http://[::1]:9000/_sockpit/login?key=k");
        assert_eq!(u.publish(), "http://[::1]:9000/_sockpit/api/publish");
    }
}

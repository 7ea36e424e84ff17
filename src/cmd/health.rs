//! `itsm-bridge health --url http://127.0.0.1:9464/livez`: one plain-HTTP GET,
//! exit 0 on a 2xx answer and 1 on anything else, so a container image with no
//! shell and no curl can still run a healthcheck with the binary it ships.
//! Only `http://` URLs: the `[server]` endpoints are plain HTTP on loopback.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use crate::{CmdResult, Failure};

/// How long the whole check may take, connect and answer each.
const TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(url: &str) -> CmdResult {
    let (authority, path) = split_url(url).map_err(|why| {
        Failure::Input(format!(
            "error: --url `{url}`: {why}; write e.g. http://127.0.0.1:9464/livez"
        ))
    })?;
    match get_status(authority, path) {
        Ok(status) if (200..300).contains(&status) => {
            println!("{url}: {status}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(status) => {
            eprintln!("unhealthy: {url} answered {status}");
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("unhealthy: {url}: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_url(url: &str) -> Result<(&str, &str), &'static str> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are checked")?;
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !has_port || authority.contains(['@', ' ']) {
        return Err("name a host and a port");
    }
    if path.contains([' ', '\r', '\n']) {
        return Err("the path has a space or a line break");
    }
    Ok((authority, path))
}

/// The status code of `GET path` on `authority`.
fn get_status(authority: &str, path: &str) -> std::io::Result<u16> {
    let address = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("the host has no address"))?;
    let mut stream = TcpStream::connect_timeout(&address, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        match stream.read(&mut head[read..])? {
            0 => break,
            n => read += n,
        }
    }
    let line = String::from_utf8_lossy(&head[..read]);
    line.strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("the answer is not HTTP"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:9464/livez"),
            Ok(("127.0.0.1:9464", "/livez"))
        );
        assert_eq!(split_url("http://localhost:80"), Ok(("localhost:80", "/")));
        assert_eq!(
            split_url("http://[::1]:9464/healthz"),
            Ok(("[::1]:9464", "/healthz"))
        );
        for bad in [
            "https://127.0.0.1:9464/livez",
            "http://127.0.0.1/livez",
            "http://:9464/",
            "127.0.0.1:9464",
            "http://u@127.0.0.1:9464/",
        ] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }
}

//! `ingest serve` for tests: the real binary, started on a port the system chooses, and a
//! plain HTTP/1.1 client over a TCP socket to talk to it (one request a connection).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::time::Duration;

use super::Workspace;

/// A running `ingest serve`, stopped (SIGTERM, then waited for) when dropped.
pub struct Service {
    pub address: SocketAddr,
    child: Option<Child>,
    /// What the service wrote to stderr, once it has stopped ([`Service::stop`]).
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// One HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl Service {
    /// Starts `ingest serve ARGS...` on this workspace's stores and waits until it listens.
    pub fn start(ws: &Workspace, args: &[&str]) -> Self {
        Self::start_with(ws, args, |_| {})
    }

    /// [`Service::start`], with the command adjusted first (its environment, say).
    pub fn start_with(ws: &Workspace, args: &[&str], adjust: impl FnOnce(&mut std::process::Command)) -> Self {
        let mut command = ws.command(["serve", "--listen", "127.0.0.1:0", "--json"].iter().chain(args));
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        adjust(&mut command);
        let mut child = command.spawn().expect("starting ingest serve");
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        if line.is_empty() {
            let status = child.wait().unwrap();
            panic!("ingest serve did not start ({status}): {}", stderr.join().unwrap());
        }
        let listening: serde_json::Value = serde_json::from_str(&line).unwrap();
        let address = listening["listening"].as_str().unwrap().trim_start_matches("http://").parse().unwrap();
        Self { address, child: Some(child), stderr: Some(stderr) }
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Response {
        self.request("POST", path, &[("Content-Type", "application/json")], body.to_string().as_bytes())
    }

    /// A request with these headers and body, on a connection of its own.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        request(self.address, method, path, headers, body)
    }

    /// Stops the service (SIGTERM) and returns its exit status and what it wrote to stderr.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let status = self.terminate();
        (status, self.stderr.take().unwrap().join().unwrap())
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("ingest serve did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
    }
}

/// One HTTP/1.1 request on a new connection (`Connection: close`), and its whole response.
pub fn request(address: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut stream = TcpStream::connect(address).expect("connecting to the service");
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).unwrap();
    // A service may answer (413, say) before it has read the whole body, and close.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse(&raw)
}

fn parse(raw: &[u8]) -> Response {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!("no complete HTTP response: {:?}", String::from_utf8_lossy(raw));
    });
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = unchunk(&body);
    }
    Response { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else { return body };
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
}

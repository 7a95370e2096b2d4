//! [`Conn`]: a keep-alive HTTP/1.1 client connection written by hand for load generation on loopback. One
//! request at a time, answers framed by `content-length` (all the emulator sends); it costs far less than the
//! server it drives, so the measurements are the server's.

use std::{io, net::SocketAddr};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// One keep-alive connection.
pub(crate) struct Conn {
    addr: SocketAddr,
    stream: TcpStream,
    buffer: Vec<u8>,
    request: Vec<u8>,
}

/// An answer: status and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Conn {
    /// Connects to `addr`.
    pub(crate) async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        Ok(Conn { addr, stream: open(addr).await?, buffer: Vec::with_capacity(8192), request: Vec::with_capacity(512) })
    }

    /// `GET path`; reconnects once if the server closed the idle connection (a GET is safe to repeat).
    pub(crate) async fn get(&mut self, path: &str) -> io::Result<Answer> {
        match self.exchange("GET", path, None).await {
            Ok(answer) => Ok(answer),
            Err(_) => {
                self.stream = open(self.addr).await?;
                self.buffer.clear();
                self.exchange("GET", path, None).await
            }
        }
    }

    /// `POST path` with a JSON body; never repeated, so that a message is never sent twice.
    pub(crate) async fn post_json(&mut self, path: &str, body: &str) -> io::Result<Answer> {
        self.exchange("POST", path, Some(body)).await
    }

    async fn exchange(&mut self, method: &str, path: &str, body: Option<&str>) -> io::Result<Answer> {
        use std::io::Write;
        self.request.clear();
        write!(self.request, "{method} {path} HTTP/1.1\r\nhost: {}\r\n", self.addr)?;
        if let Some(body) = body {
            write!(self.request, "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len())?;
        } else {
            self.request.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&self.request).await?;
        self.read_answer().await
    }

    async fn read_answer(&mut self) -> io::Result<Answer> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some((head_end, status, length)) = parse_head(&self.buffer)? {
                let end = head_end + length;
                if self.buffer.len() >= end {
                    let body = self.buffer[head_end..end].to_vec();
                    self.buffer.drain(..end);
                    return Ok(Answer { status, body });
                }
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }
}

async fn open(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The end of the head (start of the body), the status and the `content-length`, once the head is complete.
fn parse_head(buffer: &[u8]) -> io::Result<Option<(usize, u16, usize)>> {
    let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buffer[..head_end]).map_err(io::Error::other)?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| io::Error::other(format!("malformed status line in {head:?}")))?;
    let length = lines
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>())
        })
        .ok_or_else(|| io::Error::other("answer without content-length"))?
        .map_err(io::Error::other)?;
    Ok(Some((head_end + 4, status, length)))
}

#[cfg(test)]
mod tests {
    use super::parse_head;

    #[test]
    fn a_head_is_parsed_once_complete() {
        let answer = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(parse_head(&answer[..20]).unwrap(), None);
        let (body_start, status, length) = parse_head(answer).unwrap().unwrap();
        assert_eq!((status, length), (404, 3));
        assert_eq!(&answer[body_start..], b"abc");
    }
}

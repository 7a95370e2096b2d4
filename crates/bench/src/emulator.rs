//! The emulator's ceiling. The emulator runs on one thread (a current-thread runtime: one core); the load
//! generator runs on another, over keep-alive HTTP/1.1 connections written by hand so that it costs far less
//! than the server it measures. Half the connections send `sendMessage` to a chat that exists, half short-poll
//! `getUpdates` with `offset=-1`, so that every answer carries one update.

use std::{
    io,
    net::SocketAddr,
    time::{Duration, Instant},
};

use botapi_emulator::{Emulator, EmulatorConfig};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

/// Options of the emulator benchmark.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Seconds of measured load (after one second of warm-up).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Bots to spread the load over.
    #[arg(long, default_value_t = 16)]
    bots: usize,
}

fn token(bot: usize) -> String {
    format!("{}:BenchTokenForTheEmulator_{bot:06}", 100_000 + bot)
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let server_shutdown = shutdown.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async move {
            let listener = TcpListener::from_std(std_listener)?;
            let emu = Emulator::serve(listener, EmulatorConfig::default(), server_shutdown.clone());
            ready_tx.send(())?;
            server_shutdown.cancelled().await;
            emu.stop().await;
            anyhow::Ok(())
        })
    });
    ready_rx.recv()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = runtime.block_on(load(addr, &args));
    shutdown.cancel();
    server.join().map_err(|_| anyhow::anyhow!("emulator thread panicked"))??;
    let report = result?;
    println!("| benchmark | connections | bots | requests | seconds | requests/s | p50 | p99 |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| emulator, getUpdates + sendMessage, 1 core | {} | {} | {} | {:.1} | {:.0} | {:.0} µs | {:.0} µs |",
        args.connections,
        args.bots,
        report.requests,
        report.elapsed.as_secs_f64(),
        report.requests as f64 / report.elapsed.as_secs_f64(),
        report.p50.as_secs_f64() * 1e6,
        report.p99.as_secs_f64() * 1e6,
    );
    Ok(())
}

struct Report {
    requests: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

async fn load(addr: SocketAddr, args: &Args) -> anyhow::Result<Report> {
    let control = botapi_emulator::Control::new(format!("http://{addr}"));
    for bot in 0..args.bots {
        let registered = control.bot(&token(bot)).await?;
        control.user(1 + bot as i64).send(&registered, "/start").await?;
    }
    let warm_up = Instant::now() + Duration::from_secs(1);
    let end = warm_up + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for connection in 0..args.connections {
        let bot = connection % args.bots;
        tasks.push(tokio::spawn(client(addr, bot, connection % 2 == 0, warm_up, end)));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Report { requests: latencies.len() as u64, elapsed: end - warm_up, p50: at(0.50), p99: at(0.99) })
}

/// One keep-alive connection sending either `sendMessage` or `getUpdates` as fast as answers come back;
/// returns the latencies measured after the warm-up.
async fn client(
    addr: SocketAddr,
    bot: usize,
    sends: bool,
    warm_up: Instant,
    end: Instant,
) -> io::Result<Vec<Duration>> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (path, body) = if sends {
        (format!("/bot{}/sendMessage", token(bot)), format!(r#"{{"chat_id":{},"text":"benchmark reply"}}"#, 1 + bot))
    } else {
        (format!("/bot{}/getUpdates", token(bot)), r#"{"offset":-1,"timeout":0}"#.to_owned())
    };
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut buffer = Vec::with_capacity(4096);
    loop {
        let started = Instant::now();
        if started >= end {
            return Ok(latencies);
        }
        stream.write_all(request.as_bytes()).await?;
        read_response(&mut stream, &mut buffer).await?;
        if started >= warm_up {
            latencies.push(started.elapsed());
        }
    }
}

/// Reads one HTTP/1.1 response with a `content-length`, failing on anything but 200.
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<()> {
    buffer.clear();
    loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        buffer.extend_from_slice(&chunk[..n]);
        let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&buffer[..head_end]).map_err(io::Error::other)?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(io::Error::other(format!("unexpected answer: {head}")));
        }
        let length = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>()))
            .ok_or_else(|| io::Error::other("no content-length"))?
            .map_err(io::Error::other)?;
        if buffer.len() >= head_end + 4 + length {
            return Ok(());
        }
    }
}

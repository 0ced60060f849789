//! The nemesis' second backend: nodes that are containers on one Docker network. Faults are
//! the real thing between hosts with their own addresses: `docker network disconnect` cuts a
//! node off from every peer, the object store and the clients alike; `docker pause` freezes
//! it (the cgroup freezer); `docker kill` and `docker start` crash and restart it with its
//! data (the container's own filesystem survives a restart).

use std::process::Command;

/// Containers to act on, and the network a partition disconnects them from.
#[derive(Debug, Clone)]
pub struct Docker {
    pub containers: Vec<String>,
    pub network: String,
    /// Each container's names on the network (compose's service name among them) and its
    /// fixed address if it has one, read at the start: a reconnected container must be found
    /// by the same names at the same address.
    aliases: Vec<Vec<String>>,
    fixed_ips: Vec<Option<String>>,
}

fn docker(args: &[&str]) -> Result<String, String> {
    let output = Command::new("docker").args(args).output().map_err(|e| format!("cannot run docker: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(format!("docker {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
    }
}

/// What `docker inspect` says of one container.
struct Inspected {
    running: bool,
    paused: bool,
    connected: bool,
}

impl Docker {
    /// Containers on `network`, each of them connected to it now.
    pub fn new(containers: Vec<String>, network: String) -> Result<Self, String> {
        let mut aliases = Vec::new();
        let mut fixed_ips = Vec::new();
        for container in &containers {
            let format = format!(
                "{{{{with (index .NetworkSettings.Networks \"{network}\").IPAMConfig}}}}{{{{.IPv4Address}}}}{{{{end}}}}"
            );
            let ip = docker(&["inspect", "--format", &format, container])?;
            fixed_ips.push((!ip.is_empty() && ip != "<no value>").then_some(ip));
            let format = format!("{{{{json (index .NetworkSettings.Networks \"{network}\").Aliases}}}}");
            let out = docker(&["inspect", "--format", &format, container])?;
            let names: Option<Vec<String>> = serde_json::from_str(&out)
                .map_err(|e| format!("{container} is not on the network {network}? ({out}: {e})"))?;
            aliases.push(names.unwrap_or_default());
        }
        Ok(Self { containers, network, aliases, fixed_ips })
    }

    fn inspect(&self, container: &str) -> Result<Inspected, String> {
        let format = format!(
            "{{{{.State.Running}}}} {{{{.State.Paused}}}} {{{{if index .NetworkSettings.Networks \"{}\"}}}}true{{{{else}}}}false{{{{end}}}}",
            self.network
        );
        let out = docker(&["inspect", "--format", &format, container])?;
        let fields: Vec<&str> = out.split_whitespace().collect();
        match fields[..] {
            [running, paused, connected] => {
                Ok(Inspected { running: running == "true", paused: paused == "true", connected: connected == "true" })
            }
            _ => Err(format!("docker inspect {container}: unexpected answer {out:?}")),
        }
    }

    pub fn kill(&self, container: &str) -> Result<(), String> {
        docker(&["kill", container]).map(drop)
    }

    pub fn restart(&self, container: &str) -> Result<(), String> {
        docker(&["start", container]).map(drop)
    }

    pub fn pause(&self, container: &str) -> Result<(), String> {
        docker(&["pause", container]).map(drop)
    }

    pub fn resume(&self, container: &str) -> Result<(), String> {
        docker(&["unpause", container]).map(drop)
    }

    /// Cuts `container` off the network: from every peer, the object store and the clients.
    pub fn partition(&self, container: &str) -> Result<(), String> {
        docker(&["network", "disconnect", &self.network, container]).map(drop)
    }

    /// Connects `container` again (keeping its name as its address on the network).
    pub fn heal(&self, container: &str) -> Result<(), String> {
        if self.inspect(container)?.connected {
            return Ok(());
        }
        let mut args = vec!["network", "connect"];
        if let Some(i) = self.containers.iter().position(|c| c == container) {
            for alias in &self.aliases[i] {
                args.extend(["--alias", alias.as_str()]);
            }
            if let Some(ip) = &self.fixed_ips[i] {
                args.extend(["--ip", ip.as_str()]);
            }
        }
        args.extend([self.network.as_str(), container]);
        docker(&args).map(drop)
    }

    /// Every container running, unpaused and connected, each attempted even when an earlier
    /// one failed. Returns the repairs made (`restart n2`) and the errors.
    pub fn heal_everything(&self) -> Vec<(&'static str, String, Result<(), String>)> {
        let mut outcomes = Vec::new();
        for container in &self.containers {
            let state = match self.inspect(container) {
                Ok(state) => state,
                Err(e) => {
                    outcomes.push(("heal", container.clone(), Err(e)));
                    continue;
                }
            };
            if state.paused {
                outcomes.push(("resume", container.clone(), self.resume(container)));
            } else if !state.running {
                outcomes.push(("restart", container.clone(), self.restart(container)));
            }
            if !state.connected {
                outcomes.push(("heal", container.clone(), self.heal(container)));
            }
        }
        outcomes
    }
}

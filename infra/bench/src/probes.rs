//! What is read from outside the operator: pve-sim's request counts (admin API), the
//! operator's and the API server's Prometheus text.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain-HTTP GET on loopback (`http://host:port/path`): the body.
pub async fn http_get(url: &str) -> anyhow::Result<String> {
    let rest = url.strip_prefix("http://").context("not an http:// URL")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(host).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
            .await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        anyhow::Ok(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(30), fetch)
        .await
        .with_context(|| format!("GET {url}: timed out"))??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP header")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("GET {url}: {}", head.lines().next().unwrap_or_default());
    }
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Ok(dechunk(body));
    }
    Ok(body.to_string())
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// One Prometheus sample: metric name, labels, value.
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of a Prometheus text exposition (comments skipped).
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        let mut rest = labels;
        while let Some((k, v)) = rest.split_once("=\"") {
            let Some(end) = v.find('"') else { break };
            map.insert(k.trim_start_matches(',').trim().to_string(), v[..end].to_string());
            rest = &v[end + 1..];
        }
        out.push(Sample {
            name: name.to_string(),
            labels: map,
            value,
        });
    }
    out
}

/// `apiserver_request_total` summed by "VERB resource[/subresource]" (resource requests only).
pub fn apiserver_requests(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in parse_prometheus(text) {
        if s.name != "apiserver_request_total" {
            continue;
        }
        let resource = s.labels.get("resource").cloned().unwrap_or_default();
        if resource.is_empty() {
            continue;
        }
        let sub = s.labels.get("subresource").cloned().unwrap_or_default();
        let verb = s.labels.get("verb").cloned().unwrap_or_default();
        let key = if sub.is_empty() {
            format!("{verb} {resource}")
        } else {
            format!("{verb} {resource}/{sub}")
        };
        *out.entry(key).or_insert(0.0) += s.value;
    }
    out
}

/// The operator's reconciles of `controller`: the cumulative duration buckets (upper bound in
/// seconds → count, `+Inf` as infinity) and the count.
pub fn reconcile_histogram(text: &str, controller: &str) -> (Vec<(f64, f64)>, f64) {
    let mut buckets = Vec::new();
    let mut count = 0.0;
    for s in parse_prometheus(text) {
        if s.labels.get("controller").map(String::as_str) != Some(controller) {
            continue;
        }
        match s.name.as_str() {
            "controller_runtime_reconcile_time_seconds_bucket" => {
                let le = s
                    .labels
                    .get("le")
                    .map_or(f64::INFINITY, |l| l.parse().unwrap_or(f64::INFINITY));
                buckets.push((le, s.value));
            }
            "controller_runtime_reconcile_time_seconds_count" => count = s.value,
            _ => {}
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    (buckets, count)
}

/// The `q` quantile of the difference of two cumulative histograms, interpolated linearly in
/// its bucket as Prometheus' `histogram_quantile` does.
pub fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let was = before.iter().find(|(l, _)| l == le).map_or(0.0, |(_, c)| *c);
            (*le, n - was)
        })
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for (le, cum) in delta {
        if cum >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let span = cum - lower.1;
            let frac = if span > 0.0 { (rank - lower.1) / span } else { 1.0 };
            return Some(lower.0 + (le - lower.0) * frac);
        }
        lower = (le, cum);
    }
    None
}

/// One endpoint's count in pve-sim's `GET /requests/stats`.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct EndpointCount {
    pub method: String,
    pub route: String,
    pub mutating: bool,
    pub count: u64,
}

/// pve-sim's calls per "METHOD route", with whether it mutates.
pub async fn pve_stats(admin_url: &str) -> anyhow::Result<BTreeMap<String, (u64, bool)>> {
    let body = http_get(&format!("{}/requests/stats", admin_url.trim_end_matches('/'))).await?;
    let list: Vec<EndpointCount> =
        serde_json::from_str(&body).with_context(|| format!("parse /requests/stats: {body}"))?;
    Ok(list
        .into_iter()
        .map(|e| (format!("{} {}", e.method, e.route), (e.count, e.mutating)))
        .collect())
}

/// `after - before` per key (keys that did not move are left out).
pub fn pve_delta(
    before: &BTreeMap<String, (u64, bool)>,
    after: &BTreeMap<String, (u64, bool)>,
) -> BTreeMap<String, (u64, bool)> {
    after
        .iter()
        .filter_map(|(k, (n, m))| {
            let d = n - before.get(k).map_or(0, |b| b.0);
            (d > 0).then(|| (k.clone(), (d, *m)))
        })
        .collect()
}

/// Task-status polls are left out of "calls per container".
pub fn is_task_poll(key: &str) -> bool {
    key.contains("/tasks/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_in_the_bucket() {
        let before = vec![(0.001, 0.0), (0.002, 0.0), (0.004, 0.0), (f64::INFINITY, 0.0)];
        let after = vec![
            (0.001, 50.0),
            (0.002, 90.0),
            (0.004, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert!((quantile(&before, &after, 0.5).unwrap() - 0.001).abs() < 1e-9);
        assert!((quantile(&before, &after, 0.99).unwrap() - 0.0038).abs() < 1e-6);
    }

    #[test]
    fn prometheus_lines_parse() {
        let text = "# HELP x\napiserver_request_total{code=\"200\",group=\"lxc.infrahaus.dev\",resource=\"lxccontainers\",subresource=\"status\",verb=\"PATCH\"} 7\n";
        let m = apiserver_requests(text);
        assert_eq!(m.get("PATCH lxccontainers/status"), Some(&7.0));
        let h =
            "controller_runtime_reconcile_time_seconds_bucket{controller=\"LxcContainer\",le=\"0.001\"} 3\n";
        assert_eq!(reconcile_histogram(h, "LxcContainer").0, vec![(0.001, 3.0)]);
    }
}

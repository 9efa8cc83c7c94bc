//! The status page end to end: the in-process operator reconciles real objects (real API
//! server, Postgres audit, Redis, pve-sim), the page serves them from its own watch caches, and
//! real headless Chromium renders them (DOM dumps and screenshots, kept under the target dir).
//! Checked: real objects shown, a `<script>` in a description rendered inert, no secret value
//! on any page, only GET/HEAD, the security headers, the bearer token, an SSE update after a
//! status change, the overview's counts following creates, updates and deletes, and the audit
//! trail's keyset pages on Postgres and SQLite.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::Utc;
use lxc_operator::audit::{AuditPage, AuditQuery, AuditStore, Intent, IntentId, Outcome, OutcomeKind};
use lxc_operator::page::{PageCaches, PageState};
use serde_json::json;
use support::{World, apply};

/// The script a hostile description carries: if it ran, the page's title would change.
const PAYLOAD: &str = "<script>document.title='PWNED'</script><img src=x onerror=\"document.title='PWNED'\">";

static PAGE: OnceLock<(SocketAddr, SocketAddr)> = OnceLock::new();

/// The page (and a token-protected twin) served once per test binary, on a runtime that
/// outlives every test, reading the same Postgres trail the operator writes.
fn page() -> (SocketAddr, SocketAddr) {
    *PAGE.get_or_init(|| {
        support::operator();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("page runtime");
            rt.block_on(async move {
                let kube = test_world::control_plane().client().await;
                let audit = support::audit().await;
                let caches = PageCaches::start(kube, audit.clone());
                let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let locked = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addrs = (open.local_addr().unwrap(), locked.local_addr().unwrap());
                let open_state = PageState::new(caches.clone(), audit.clone(), None)
                    .with_latency(support::metrics().latency());
                let locked_state = PageState::new(caches, audit, Some("page-token-Zq81"));
                tx.send(addrs).unwrap();
                let _ = tokio::join!(
                    lxc_operator::page::serve(open, open_state, std::future::pending()),
                    lxc_operator::page::serve(locked, locked_state, std::future::pending()),
                );
            });
        });
        rx.recv().expect("page started")
    })
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// GETs a page; returns its status, headers and body.
async fn get(url: &str) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let r = http().get(url).send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.text().await.unwrap())
}

/// Waits until the page at `url` contains `needle` (the page's caches follow the API server).
async fn page_showing(url: &str, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (status, _, body) = get(url).await;
        if status.is_success() && body.contains(needle) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{url} never showed {needle:?}; last:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs headless Chromium with a fresh profile; returns (stdout, stderr).
fn chromium(args: &[&str]) -> (String, String) {
    let profile = tempdir("chromium-profile");
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs (installed by infra/test-world/bootstrap.sh)");
    let _ = std::fs::remove_dir_all(&profile);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "lxc-page-{name}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The console lines Chromium printed that speak of an error or a CSP refusal.
fn console_problems(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            l.contains("CONSOLE") || l.contains("Content Security Policy") || l.contains("Refused to")
        })
        .filter(|l| {
            l.contains("Refused") || l.contains("Uncaught") || l.contains("Error") || l.contains("error")
        })
        .collect()
}

/// Dumps the DOM Chromium built (after scripts ran) and takes a screenshot at `width`.
fn render(url: &str, shot: &str, width: u32) -> String {
    let path = artifacts().join(shot);
    let (_, stderr) = chromium(&[
        &format!("--screenshot={}", path.display()),
        &format!("--window-size={width},1800"),
        url,
    ]);
    assert!(
        std::fs::metadata(&path).map(|m| m.len() > 1000).unwrap_or(false),
        "no screenshot of {url}: {stderr}"
    );
    assert_eq!(console_problems(&stderr), Vec::<&str>::new(), "{url}");
    let (dom, stderr) = chromium(&["--dump-dom", url]);
    assert!(dom.contains("</html>"), "no DOM for {url}: {stderr}");
    assert_eq!(console_problems(&stderr), Vec::<&str>::new(), "{url}");
    dom
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_real_objects_with_no_secret_and_no_live_script() {
    let (addr, _) = page();
    let w = World::new("page", &["pve1"], |c| c).await;
    let root_password = format!("root-pw-{}-Xk29", w.ns);
    apply(
        &w.kube,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rootpw", "namespace": w.ns},
               "stringData": {"password": root_password}}),
    )
    .await;
    w.container(
        "web",
        json!({"nodeRef": w.nodes[0], "description": format!("front door {PAYLOAD}"),
               "tags": ["app"], "rootPasswordSecretRef": {"name": "rootpw", "key": "password"}}),
    )
    .await;
    w.container("db", json!({"nodeRef": w.nodes[0]})).await;
    let web = w.ready("web").await;
    w.ready("db").await;
    let vmid = support::vmid(&web);
    let base = format!("http://{addr}");
    let container_url = format!("{base}/containers/{}/web", w.ns);

    // Real objects on the overview and the container page, from the page's caches.
    let overview = page_showing(
        &format!("{base}/?namespace={}", w.ns),
        &format!("{}/db", w.ns),
        60,
    )
    .await;
    assert!(overview.contains(&format!("{}/web", w.ns)), "{overview}");
    assert!(overview.contains(&w.nodes[0]), "{overview}");
    let watch_logs = || {
        support::logs()
            .lines()
            .filter(|l| l.contains("page watch"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    // Each kind's cache fills on its own; the template shows up too.
    let waited = Instant::now();
    let overview = page_showing(&format!("{base}/"), &w.template, 30).await;
    eprintln!(
        "template on the page after another {:?}; {}",
        waited.elapsed(),
        watch_logs()
    );
    assert!(
        overview.contains(&format!("/templates/{}", w.template)),
        "{}",
        watch_logs()
    );
    // The last hour's latencies, drawn from the operator's metrics registry after these
    // reconciles: a dot per minute that saw any, in both pictures.
    let latency: Vec<&str> = overview.split("<svg class=\"latency\"").skip(1).collect();
    assert_eq!(latency.len(), 2, "{overview}");
    for (picture, what) in latency.iter().zip(["Reconcile", "Proxmox API call"]) {
        let picture = picture.split("</svg>").next().unwrap_or_default();
        assert!(picture.contains(&format!("<title>{what} latency")), "{picture}");
        assert!(
            picture.contains("<circle class=\"point p95\"") && picture.contains("<polyline class=\"p50\""),
            "{what}: no data point after real reconciles: {picture}"
        );
    }
    let filtered = get(&format!("{base}/?namespace={}&q=WE", w.ns)).await.2;
    assert!(filtered.contains(&format!("{}/web", w.ns)) && !filtered.contains(&format!("{}/db", w.ns)));
    let container = page_showing(&container_url, "create container", 30).await;
    assert!(container.contains(&format!("<dd>{vmid}</dd>")), "{container}");
    assert!(
        container.contains("Ready") && container.contains("rootpw"),
        "{container}"
    );
    // The payload is text: escaped in the HTML...
    assert!(container.contains("&lt;script&gt;document.title="), "{container}");
    assert!(
        !container.contains(PAYLOAD) && !container.contains("<img src=x"),
        "{container}"
    );

    // ...and inert in a real browser: the title is the page's, no element came from it.
    let dom = render(&container_url, "container.png", 1280);
    assert!(dom.contains("<title>") && !dom.contains("PWNED</title>"), "{dom}");
    assert!(!dom.contains("<img src=\"x\""), "{dom}");
    assert!(dom.contains("front door"), "{dom}");
    render(&container_url, "container-phone.png", 390);
    let overview_dom = render(&format!("{base}/"), "overview.png", 1280);
    assert!(overview_dom.contains(&format!("{}/web", w.ns)));
    render(&format!("{base}/"), "overview-phone.png", 390);
    let audit_dom = render(&format!("{base}/audit?object=web"), "audit.png", 1280);
    assert!(audit_dom.contains("create container"), "{audit_dom}");

    // No secret value on any page: the root password, the API token, any Secret data.
    let pages = [
        format!("{base}/"),
        container_url.clone(),
        format!("{base}/containers/{}/db", w.ns),
        format!("{base}/nodes/{}", w.nodes[0]),
        format!("{base}/templates/{}", w.template),
        format!("{base}/audit"),
        format!("{base}/audit?object=web"),
    ];
    for url in &pages {
        let (status, headers, body) = get(url).await;
        assert_eq!(status, 200, "{url}");
        for secret in [root_password.as_str(), w.sim.token_secret()] {
            assert!(!body.contains(secret), "{url} shows a secret value");
        }
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        // No inline script anywhere: every <script> has a src.
        for (i, _) in body.match_indices("<script") {
            assert!(
                body[i..].starts_with("<script src=\"/static/page.js\""),
                "{url}: inline script"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_get_and_head_and_the_token_when_set() {
    let (open, locked) = page();
    let client = http();
    for path in ["/", "/audit", "/events", "/static/page.css", "/nowhere"] {
        for method in [
            reqwest::Method::POST,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
            reqwest::Method::PATCH,
        ] {
            let r = client
                .request(method.clone(), format!("http://{open}{path}"))
                .body("x=1")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 405, "{method} {path}");
            assert_eq!(r.headers()["allow"], "GET, HEAD");
            assert!(r.headers().contains_key("content-security-policy"));
        }
    }
    for path in ["/", "/audit", "/events", "/static/page.js"] {
        // HEAD answers at once, the event stream's too (no body is waited for).
        let head = client
            .head(format!("http://{open}{path}"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
    }
    let js = client
        .get(format!("http://{open}/static/page.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    let css = client
        .get(format!("http://{open}/static/page.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(css.text().await.unwrap().contains("prefers-color-scheme: dark"));

    // With a token: nothing without it, nothing with a wrong one, everything with it.
    let url = format!("http://{locked}/");
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    let wrong = client
        .get(&url)
        .bearer_auth("page-token-Zq82")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.headers()["www-authenticate"], "Bearer");
    let right = client
        .get(&url)
        .bearer_auth("page-token-Zq81")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert!(!right.text().await.unwrap().contains("page-token-Zq81"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_change_reaches_the_event_stream_and_the_page() {
    let (addr, _) = page();
    let w = World::new("pagelive", &["pve1"], |c| c).await;
    w.container("app", json!({"nodeRef": w.nodes[0]})).await;
    w.ready("app").await;
    let url = format!("http://{addr}/containers/{}/app", w.ns);
    page_showing(&url, "badge ok\">Ready</span>", 30).await;

    // A real browser holds the page open: its script listens to /events and swaps the page in.
    let browser = LiveBrowser::open(&url);
    assert!(
        browser
            .wait_for("lxc-operator page: live", Duration::from_secs(30))
            .is_some(),
        "the page never connected to /events: {:?}",
        browser.lines()
    );
    let mut events = http()
        .get(format!("http://{addr}/events"))
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let started = Instant::now();
    w.patch_spec("app", json!({"powerState": "Stopped"})).await;
    w.wait("app", "Stopped", 60, |ct| {
        ct.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Stopped")
    })
    .await;

    // The stream names the container until its status reads Stopped in the page's cache.
    let wanted = format!("data: container/{}/app", w.ns);
    let mut seen = String::new();
    let mut announced = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let chunk = tokio::time::timeout(Duration::from_secs(5), events.chunk()).await;
        if let Ok(Ok(Some(bytes))) = chunk {
            seen.push_str(&String::from_utf8_lossy(&bytes));
            announced = seen.matches(&wanted).count();
        }
        let (_, _, body) = get(&url).await;
        if announced > 0 && body.contains("badge unknown\">Stopped</span>") {
            eprintln!(
                "SSE update seen {:?} after the patch ({announced} events)",
                started.elapsed()
            );
            assert!(seen.contains("event: change"), "{seen}");
            // The browser's page went Stopped through the event stream, without a reload.
            let line = browser.wait_for("app Stopped", Duration::from_secs(30));
            assert!(
                line.as_deref()
                    .is_some_and(|l| l.contains("refreshed after container/")),
                "the browser never refreshed to Stopped; its console: {:?}",
                browser.lines()
            );
            eprintln!(
                "browser refreshed {:?} after the patch: {line:?}",
                started.elapsed()
            );
            let lines = browser.lines();
            assert_eq!(console_problems(&lines.join("\n")), Vec::<&str>::new());
            return;
        }
    }
    panic!("no SSE change for the container (stream: {seen:?})");
}

/// The count the overview shows for `phase` (`None` when the phase has no container).
fn phase_count(overview: &str, phase: &str) -> Option<usize> {
    let head = format!("id=\"phase-{phase}\">{phase} <span class=\"count\">");
    let rest = overview.split(&head).nth(1)?;
    rest.split('<').next()?.parse().ok()
}

/// The `N managed` figure on the card of node `node`.
fn managed(overview: &str, node: &str) -> Option<usize> {
    let card = overview.split(&format!("href=\"/nodes/{node}\"")).nth(1)?;
    let before = card.split(" managed").next()?;
    before.rsplit("· ").next()?.parse().ok()
}

/// Waits until the overview at `url` shows `want` (phase counts, then the node card's count).
async fn overview_showing(url: &str, node: &str, want: &[(&str, Option<usize>)], managed_want: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, _, body) = get(url).await;
        let seen: Vec<(&str, Option<usize>)> =
            want.iter().map(|(p, _)| (*p, phase_count(&body, p))).collect();
        if seen == want && managed(&body, node) == Some(managed_want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} never showed {want:?} and {managed_want} managed on {node}; it shows {seen:?} and {:?}",
            managed(&body, node)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The overview's counts come from an index the page keeps as watch events arrive: each change
/// of a real object (created, Ready, stopped, deleted) must move them, through the real watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_counts_follow_creates_updates_and_deletes() {
    let (addr, _) = page();
    let w = World::new("pagecount", &["pve1"], |c| c).await;
    let node = &w.nodes[0];
    let url = format!("http://{addr}/?namespace={}", w.ns);
    for name in ["one", "two"] {
        w.container(name, json!({"nodeRef": node})).await;
    }
    w.ready("one").await;
    w.ready("two").await;
    overview_showing(&url, node, &[("Ready", Some(2)), ("Stopped", None)], 2).await;

    w.patch_spec("two", json!({"powerState": "Stopped"})).await;
    overview_showing(&url, node, &[("Ready", Some(1)), ("Stopped", Some(1))], 2).await;

    w.delete("one").await;
    let gone = [("Ready", None), ("Deleting", None), ("Stopped", Some(1))];
    overview_showing(&url, node, &gone, 1).await;
    let (_, _, body) = get(&url).await;
    assert!(
        body.contains(&format!("{}/two", w.ns)) && !body.contains(&format!("{}/one", w.ns)),
        "{body}"
    );
}

/// Headless Chromium holding one page open (no dump, no screenshot: it stays until dropped), its
/// log lines — the page's console among them — collected as they come.
struct LiveBrowser {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    profile: PathBuf,
}

impl LiveBrowser {
    fn open(url: &str) -> Self {
        use std::io::BufRead;
        let profile = tempdir("chromium-live");
        let mut child = std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("chromium runs");
        let stderr = child.stderr.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            lines,
            profile,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The first console line containing `needle`, waiting up to `within`.
    fn wait_for(&self, needle: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let found = self
                .lines()
                .into_iter()
                .find(|l| l.contains("CONSOLE") && l.contains(needle));
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for LiveBrowser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Writes `n` calls for object `name` (uid `uid-<name>`), every third failed.
async fn fill(store: &AuditStore, name: &str, n: usize) -> Vec<IntentId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = store
            .record_intent(&Intent {
                actor: "lxc-operator/test".into(),
                object_kind: "LxcContainer".into(),
                object_namespace: Some("ns".into()),
                object_name: name.into(),
                object_uid: format!("uid-{name}"),
                generation: 1,
                phase: "create".into(),
                operation: if i % 2 == 0 {
                    "start container"
                } else {
                    "create container"
                }
                .into(),
                node: Some("pve1".into()),
                vmid: Some(100 + i as i64),
                params: json!({}),
            })
            .await
            .unwrap();
        let outcome = if i % 3 == 0 {
            Outcome::Failed {
                error: "locked".into(),
                class: "locked".into(),
                upid: None,
            }
        } else {
            Outcome::Succeeded { upid: None }
        };
        store
            .record_outcome(id, &outcome, Duration::from_millis(5))
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

/// Pages through `filter` (50 a page) and returns every id seen, in order.
async fn walk(store: &AuditStore, filter: AuditPage) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut before = None;
    loop {
        let rows = store
            .page(AuditPage {
                before,
                limit: 50,
                ..filter.clone()
            })
            .await
            .unwrap();
        ids.extend(rows.iter().map(|r| r.id.0));
        match rows.last() {
            Some(last) if rows.len() == 50 => before = Some(last.id),
            _ => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_view_pages_by_keyset_on_both_backends() {
    let sqlite_dir = tempdir("audit-sqlite");
    let stores = [
        support::audit().await,
        AuditStore::connect(None, &sqlite_dir.join("audit.db"))
            .await
            .unwrap(),
    ];
    for store in stores {
        let name = format!("keyset-{}", rand_suffix());
        let from = Utc::now();
        let ids = fill(&store, &name, 120).await;
        fill(&store, &format!("{name}-other"), 7).await;
        let mine = AuditPage {
            name: Some(name.clone()),
            ..AuditPage::default()
        };
        let mut want: Vec<i64> = ids.iter().map(|i| i.0).collect();
        want.reverse();
        assert_eq!(walk(&store, mine.clone()).await, want, "{}", store.backend());
        let failed = walk(
            &store,
            AuditPage {
                outcome: Some(OutcomeKind::Failed),
                operation: Some("start container".into()),
                uid: Some(format!("uid-{name}")),
                from: Some(from),
                ..mine.clone()
            },
        )
        .await;
        // i % 3 == 0 and i % 2 == 0: every sixth call.
        let want_failed: Vec<i64> = want
            .iter()
            .copied()
            .filter(|id| {
                let i = ids.iter().position(|x| x.0 == *id).unwrap();
                i % 6 == 0
            })
            .collect();
        assert_eq!(failed, want_failed, "{}", store.backend());
        assert!(
            walk(
                &store,
                AuditPage {
                    to: Some(from),
                    ..mine.clone()
                }
            )
            .await
            .is_empty()
        );
        assert!(store.latest_id().await.unwrap() >= want[0]);
        if store.backend() == "sqlite" {
            // The rowid read backwards: no sort of the whole table for a deep page.
            let plan = store
                .explain(&AuditQuery::Page(AuditPage {
                    before: Some(ids[60]),
                    limit: 50,
                    ..AuditPage::default()
                }))
                .await
                .unwrap();
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }
    let _ = std::fs::remove_dir_all(&sqlite_dir);
}

/// A million calls over 10 000 objects, 0.5 % failed: a deep page (the keyset cursor in the
/// middle of the trail), with and without filters, reads the primary key backwards and answers
/// within the page's budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_pages_stay_fast_at_a_million_rows() {
    use sqlx::{AssertSqlSafe, Connection, PgConnection};
    const ROWS: i64 = 1_000_000;
    let name = format!("page_{}_{}", std::process::id(), rand_suffix() % 1_000_000);
    let mut admin = PgConnection::connect(&test_world::postgres().url())
        .await
        .unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{name}",
        test_world::postgres().port
    );
    let store = AuditStore::connect(Some(&url), Path::new("unused.db"))
        .await
        .unwrap();
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let filled = Instant::now();
    sqlx::query(AssertSqlSafe(format!(
        "WITH i AS (
           INSERT INTO audit_intents (at, actor, object_kind, object_namespace, object_name,
                                      object_uid, generation, phase, operation, node, vmid, params)
           SELECT now() - g * interval '100 milliseconds', 'lxc-operator/bench', 'LxcContainer',
                  'bench', 'ct-' || (g % 10000), 'uid-' || (g % 10000), 1, 'apply',
                  CASE WHEN g % 2 = 0 THEN 'update container config' ELSE 'start container' END,
                  'pve1', 1000 + g % 10000, '{{}}'::jsonb
           FROM generate_series(1, {ROWS}) AS g
           RETURNING id, at)
         INSERT INTO audit_outcomes (intent_id, at, outcome, error, error_class, duration_ms)
         SELECT id, at + interval '2 seconds',
                CASE WHEN id % 200 = 0 THEN 'failed' ELSE 'succeeded' END,
                CASE WHEN id % 200 = 0 THEN 'CT is locked' END,
                CASE WHEN id % 200 = 0 THEN 'locked' END, 2000
         FROM i"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();
    eprintln!("{ROWS} calls written in {:?}", filled.elapsed());

    let middle = IntentId(ROWS / 2);
    let cases = [
        ("everything", AuditPage::default()),
        (
            "failed",
            AuditPage {
                outcome: Some(OutcomeKind::Failed),
                ..AuditPage::default()
            },
        ),
        (
            "one call",
            AuditPage {
                operation: Some("start container".into()),
                ..AuditPage::default()
            },
        ),
        (
            "one object",
            AuditPage {
                name: Some("ct-4242".into()),
                ..AuditPage::default()
            },
        ),
        (
            "one uid",
            AuditPage {
                uid: Some("uid-4242".into()),
                ..AuditPage::default()
            },
        ),
        (
            // Every call of ct-4200 failed (its ids are multiples of 200).
            "one object's failures",
            AuditPage {
                name: Some("ct-4200".into()),
                outcome: Some(OutcomeKind::Failed),
                ..AuditPage::default()
            },
        ),
    ];
    for (what, filter) in cases {
        let page = AuditPage {
            before: Some(middle),
            limit: 50,
            ..filter
        };
        let plan = store.explain(&AuditQuery::Page(page.clone())).await.unwrap();
        // Warm once (the first read of a cold index pays the disk), then time the median of 5.
        store.page(page.clone()).await.unwrap();
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..5 {
            let t = Instant::now();
            rows = store.page(page.clone()).await.unwrap().len();
            times.push(t.elapsed());
        }
        times.sort();
        eprintln!(
            "{what}: {rows} rows, median {:?}, max {:?}\n{plan}",
            times[2], times[4]
        );
        assert!(rows > 0, "{what}");
        assert!(
            plan.contains("Index Scan"),
            "{what}: the page must walk an index, not scan and sort the table:\n{plan}"
        );
        // The budget is 50 ms; the machine running the tests is shared, so allow twice that.
        assert!(
            times[2] < Duration::from_millis(100),
            "{what}: median {:?}",
            times[2]
        );
    }
    drop(conn);
    drop(store);
    let _ = sqlx::query(AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
        .execute(&mut admin)
        .await;
}

/// The page on a replica that does not lead: another holds the Lease (for an hour), yet the
/// replica's page shows the objects from its own watch caches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_does_not_lead_serves_the_page() {
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::{Api, PostParams};
    let cp = test_world::control_plane();
    let kube = cp.client().await;
    let ns = cp.namespace("pagefollower").await;
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "lxc-operator", "namespace": ns},
        "spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 3600,
                 "acquireTime": now, "renewTime": now}}))
    .unwrap();
    Api::<Lease>::namespaced(kube.clone(), &ns)
        .create(&PostParams::default(), &lease)
        .await
        .unwrap();
    let name = format!("{ns}-follower-ct");
    let ct: lxc_operator::crd::LxcContainer = serde_json::from_value(json!({
        "apiVersion": "lxc.infrahaus.dev/v1alpha1", "kind": "LxcContainer",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"nodeRef": "nowhere", "templateRef": "nothing"}}))
    .unwrap();
    Api::<lxc_operator::crd::LxcContainer>::namespaced(kube.clone(), &ns)
        .create(&PostParams::default(), &ct)
        .await
        .unwrap();
    let (port, page_port) = (test_world::free_port(), test_world::free_port());
    let dir = tempdir("follower");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lxc-operator"))
        .arg("run")
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .args([
            "--namespace",
            &ns,
            "--identity",
            "page-follower",
            "--lease-seconds",
            "3",
        ])
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--status-listen=127.0.0.1:{page_port}"))
        .arg(format!("--sqlite-path={}/audit.db", dir.display()))
        .env_remove("LXC_OPERATOR_REDIS_URL")
        .env_remove("LXC_OPERATOR_DATABASE_URL")
        .env_remove("LXC_OPERATOR_REPLICAS")
        .env_remove("LXC_OPERATOR_STATUS_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("log")).unwrap())
        .spawn()
        .expect("start lxc-operator");
    let url = format!("http://127.0.0.1:{page_port}/?namespace={ns}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut shown = false;
    while Instant::now() < deadline && !shown {
        if let Ok(r) = http().get(&url).send().await {
            shown = r.text().await.unwrap_or_default().contains(&name);
        }
        if !shown {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let readyz = http()
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .map(|r| r.status());
    let leader = get(&format!("http://127.0.0.1:{port}/readyz")).await.2;
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(shown, "the follower's page never showed {name}; its log:\n{log}");
    assert!(readyz.is_ok_and(|s| s.is_success()));
    assert!(leader.contains("\"leader\":false"), "{leader}");
}

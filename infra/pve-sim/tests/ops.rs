//! Storage and templates (content, aplinfo, download-url with checksums), snapshots, resize
//! and migrate over HTTPS.

mod common;
use common::*;
use sha2::Digest;

#[tokio::test]
async fn storage_templates_and_downloads() {
    let sim = start(&["pve"]).await;
    let tok = Client::token(&sim);
    let root = Client::root(&sim).await;
    let list = tok.get_ok("/nodes/pve/storage?content=rootdir").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["storage"], "local-lvm");
    let content = tok
        .get_ok("/nodes/pve/storage/local/content?content=vztmpl")
        .await;
    assert_eq!(content[0]["volid"], TEMPLATE);
    assert_eq!(content[0]["format"], "tzst");
    let apl = tok.get_ok("/nodes/pve/aplinfo").await;
    assert!(
        apl.as_array()
            .unwrap()
            .iter()
            .any(|a| a["template"] == "alpine-3.22-default_20250617_amd64.tar.xz")
    );

    let (_, st) = tok
        .task(
            "POST",
            "/nodes/pve/aplinfo",
            &[
                ("storage", "local"),
                ("template", "alpine-3.22-default_20250617_amd64.tar.xz"),
            ],
        )
        .await;
    assert_eq!(st, "OK");
    let content = tok
        .get_ok("/nodes/pve/storage/local/content?content=vztmpl")
        .await;
    assert!(content.as_array().unwrap().iter().any(|c| c["volid"]
        == "local:vztmpl/alpine-3.22-default_20250617_amd64.tar.xz"
        && c["format"] == "txz"));
    let (s, v, _) = tok
        .call(
            "POST",
            "/nodes/pve/aplinfo",
            &[("storage", "local"), ("template", "nope.tar.zst")],
        )
        .await;
    assert_eq!(
        (s, &v["errors"]["template"]),
        (400, &serde_json::json!("no such template"))
    );
    let (s, v, _) = tok
        .call(
            "POST",
            "/nodes/pve/aplinfo",
            &[
                ("storage", "local-lvm"),
                ("template", "alpine-3.22-default_20250617_amd64.tar.xz"),
            ],
        )
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (500, Some("storage 'local-lvm' does not support templates\n"))
    );

    // download-url: the operator token lacks Sys.Modify / Sys.AccessNetwork, like on PVE.
    let url = "https://images.example.org/custom-1.0.tar.zst";
    let (s, v, _) = tok
        .call(
            "POST",
            "/nodes/pve/storage/local/download-url",
            &[
                ("content", "vztmpl"),
                ("filename", "custom-1.0.tar.zst"),
                ("url", url),
            ],
        )
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (
            403,
            Some("Permission check failed (/nodes/pve, Sys.AccessNetwork)\n")
        )
    );
    let good = hex(&sha2::Sha256::digest(
        format!("pve-sim download of {url}\n").as_bytes(),
    ));
    let (_, st) = root
        .task(
            "POST",
            "/nodes/pve/storage/local/download-url",
            &[
                ("content", "vztmpl"),
                ("filename", "custom-1.0.tar.zst"),
                ("url", url),
                ("checksum", &good),
                ("checksum-algorithm", "sha256"),
            ],
        )
        .await;
    assert_eq!(st, "OK");
    let (_, st) = root
        .task(
            "POST",
            "/nodes/pve/storage/local/download-url",
            &[
                ("content", "vztmpl"),
                ("filename", "bad-1.0.tar.zst"),
                ("url", url),
                ("checksum", "00ff"),
                ("checksum-algorithm", "sha256"),
            ],
        )
        .await;
    assert_eq!(st, format!("checksum mismatch: got '{good}' != expect '00ff'"));
    let content = tok.get_ok("/nodes/pve/storage/local/content").await;
    let names: Vec<&str> = content
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["volid"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"local:vztmpl/custom-1.0.tar.zst")
            && !names.contains(&"local:vztmpl/bad-1.0.tar.zst"),
        "{names:?}"
    );
    let (s, v, _) = root
        .call(
            "POST",
            "/nodes/pve/storage/local/download-url",
            &[("content", "vztmpl"), ("filename", "x.zip"), ("url", url)],
        )
        .await;
    assert_eq!(
        (s, &v["errors"]["filename"]),
        (400, &serde_json::json!("wrong file extension"))
    );
    let (s, v, _) = root
        .call(
            "POST",
            "/nodes/pve/storage/local/download-url",
            &[
                ("content", "vztmpl"),
                ("filename", "x.tar"),
                ("url", url),
                ("checksum", "ab"),
            ],
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["errors"]["checksum-algorithm"],
        "missing property - 'checksum' requires this property"
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn snapshots_resize_and_migrate() {
    let sim = start(&["pve1", "pve2"]).await;
    let tok = Client::token(&sim);
    create_ct(&tok, "pve1", "110", &[("memory", "256")]).await;
    assert_eq!(
        tok.task(
            "POST",
            "/nodes/pve1/lxc/110/snapshot",
            &[("snapname", "before"), ("description", "first")]
        )
        .await
        .1,
        "OK"
    );
    let (s, v, _) = tok
        .call("POST", "/nodes/pve1/lxc/110/snapshot", &[("snapname", "before")])
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (500, Some("snapshot name 'before' already used\n"))
    );
    tok.call("PUT", "/nodes/pve1/lxc/110/config", &[("memory", "2048")])
        .await;
    let snaps = tok.get_ok("/nodes/pve1/lxc/110/snapshot").await;
    let names: Vec<&str> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["before", "current"]);
    assert_eq!(snaps[1]["parent"], "before");
    assert_eq!(
        tok.get_ok("/nodes/pve1/lxc/110/config?snapshot=before").await["memory"],
        256
    );
    assert_eq!(
        tok.task("POST", "/nodes/pve1/lxc/110/snapshot/before/rollback", &[])
            .await
            .1,
        "OK"
    );
    assert_eq!(tok.get_ok("/nodes/pve1/lxc/110/config").await["memory"], 256);
    assert_eq!(
        tok.task("DELETE", "/nodes/pve1/lxc/110/snapshot/before", &[])
            .await
            .1,
        "OK"
    );
    let (s, v, _) = tok
        .call("DELETE", "/nodes/pve1/lxc/110/snapshot/before", &[])
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (500, Some("snapshot 'before' does not exist\n"))
    );

    assert_eq!(
        tok.task(
            "PUT",
            "/nodes/pve1/lxc/110/resize",
            &[("disk", "rootfs"), ("size", "+2G")]
        )
        .await
        .1,
        "OK"
    );
    assert_eq!(
        tok.get_ok("/nodes/pve1/lxc/110/config").await["rootfs"],
        "local-lvm:vm-110-disk-0,size=10G"
    );
    let (s, v, _) = tok
        .call(
            "PUT",
            "/nodes/pve1/lxc/110/resize",
            &[("disk", "rootfs"), ("size", "4G")],
        )
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (500, Some("unable to shrink disk size\n"))
    );

    assert_eq!(
        tok.task("POST", "/nodes/pve1/lxc/110/status/start", &[]).await.1,
        "OK"
    );
    let (s, v, _) = tok
        .call("POST", "/nodes/pve1/lxc/110/migrate", &[("target", "pve2")])
        .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (
            500,
            Some("can't migrate running container without --online or --restart\n")
        )
    );
    let (upid, st) = tok
        .task(
            "POST",
            "/nodes/pve1/lxc/110/migrate",
            &[("target", "pve2"), ("restart", "1")],
        )
        .await;
    assert_eq!(st, "OK");
    assert!(upid.contains(":vzmigrate:110:"));
    let (s, _, _) = tok.call("GET", "/nodes/pve1/lxc/110/status/current", &[]).await;
    assert_eq!(s, 500);
    assert_eq!(
        tok.get_ok("/nodes/pve2/lxc/110/status/current").await["status"],
        "running"
    );
    let disks = tok.get_ok("/nodes/pve2/storage/local-lvm/content?vmid=110").await;
    assert_eq!(disks[0]["volid"], "local-lvm:vm-110-disk-0");
}

//! Storage endpoints: storage list and content, the appliance index (`aplinfo`) and template
//! downloads (`aplinfo` POST, `download-url`).
//!
//! `download-url` cannot fetch anything: the downloaded bytes are `Config::download_contents[url]`
//! when registered, else the text `pve-sim download of <url>\n`; the given checksum is verified
//! against those bytes inside the task, as PVE does after the transfer.

use crate::config::StorageConfig;
use crate::error::{ApiError, ApiResult};
use crate::handler::{Ctx, Reply};
use crate::perms;
use crate::state::{State, template_format};
use crate::tasks::Action;
use serde_json::{Value, json};
use sha2::Digest;

pub fn storage_cfg<'a>(ctx: &'a Ctx, id: &str) -> ApiResult<&'a StorageConfig> {
    ctx.sim
        .cfg
        .storages
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| ApiError::server(format!("storage '{id}' does not exist")))
}

pub fn used_bytes(st: &State, node: &str, storage: &str) -> u64 {
    st.volumes
        .get(&(node.to_string(), storage.to_string()))
        .map_or(0, |v| v.iter().map(|v| v.size).sum())
}

pub fn list(ctx: &Ctx) -> ApiResult<Reply> {
    let st = ctx.sim.state();
    let wanted: Vec<&str> = ctx
        .str("content")
        .map(|c| crate::formats::split_list(c).collect())
        .unwrap_or_default();
    let id = ctx.ident();
    let out: Vec<Value> = ctx
        .sim
        .cfg
        .storages
        .iter()
        .filter(|s| ctx.str("storage").is_none_or(|w| w == s.id))
        .filter(|s| wanted.is_empty() || wanted.iter().any(|w| s.content.iter().any(|c| c == w)))
        .filter(|s| {
            perms::check_any(
                &ctx.sim.cfg,
                id,
                &format!("/storage/{}", s.id),
                &["Datastore.Audit", "Datastore.AllocateSpace"],
            )
            .is_ok()
        })
        .map(|s| {
            let used = used_bytes(&st, ctx.node(), &s.id);
            json!({
                "storage": s.id, "type": s.kind, "content": s.content.join(","),
                "active": 1, "enabled": 1, "shared": u8::from(s.shared),
                "total": s.total, "used": used, "avail": s.total - used.min(s.total),
                "used_fraction": used as f64 / s.total.max(1) as f64,
            })
        })
        .collect();
    Ok(Value::Array(out).into())
}

pub fn content(ctx: &Ctx) -> ApiResult<Reply> {
    let storage = ctx.str("storage").unwrap_or_default();
    storage_cfg(ctx, storage)?;
    let st = ctx.sim.state();
    let vols = st
        .volumes
        .get(&(ctx.node().to_string(), storage.to_string()))
        .cloned()
        .unwrap_or_default();
    let vmid: Option<u32> = ctx.str("vmid").and_then(|v| v.parse().ok());
    let out: Vec<Value> = vols
        .iter()
        .filter(|v| ctx.str("content").is_none_or(|c| c == v.content))
        .filter(|v| vmid.is_none_or(|id| v.vmid == Some(id)))
        .map(|v| {
            let mut e = json!({"volid": v.volid, "format": v.format, "content": v.content, "size": v.size, "ctime": v.ctime});
            if let Some(id) = v.vmid {
                e["vmid"] = json!(id);
            }
            e
        })
        .collect();
    Ok(Value::Array(out).into())
}

pub fn aplinfo(ctx: &Ctx) -> ApiResult<Reply> {
    let out: Vec<Value> = ctx
        .sim
        .cfg
        .appliances
        .iter()
        .map(|a| {
            json!({
                "template": a.template, "package": a.package, "version": a.version, "os": a.os,
                "section": a.section, "type": "lxc", "headline": a.headline,
                "description": format!("{} (simulated appliance)", a.headline),
                "location": format!("http://download.proxmox.com/images/system/{}", a.template),
                "infopage": "https://pve.proxmox.com/wiki/Linux_Container#pct_supported_distributions",
                "source": "https://www.proxmox.com", "architecture": "amd64",
                "maintainer": "Proxmox Support Team <support@proxmox.com>",
                "sha512sum": hex(&sha2::Sha512::digest(a.template.as_bytes())),
            })
        })
        .collect();
    Ok(Value::Array(out).into())
}

fn require_templates(ctx: &Ctx, storage: &str) -> ApiResult<()> {
    if storage_cfg(ctx, storage)?.content.iter().any(|c| c == "vztmpl") {
        Ok(())
    } else {
        Err(ApiError::server(format!(
            "storage '{storage}' does not support templates"
        )))
    }
}

pub fn apl_download(ctx: &Ctx) -> ApiResult<Reply> {
    let template = ctx.str("template").unwrap_or_default();
    let storage = ctx.str("storage").unwrap_or_default();
    if !ctx.sim.cfg.appliances.iter().any(|a| a.template == template) {
        return Err(ApiError::param("template", "no such template"));
    }
    require_templates(ctx, storage)?;
    let action = Action::Download {
        node: ctx.node().into(),
        storage: storage.into(),
        volid: format!("{storage}:vztmpl/{template}"),
        size: 120_000_000 + template.len() as u64 * 1_000_000,
    };
    Ok(ctx.task(&mut ctx.sim.state(), "download", template, None, action, None))
}

/// The bytes a download of `url` yields in the simulator (see the module doc).
pub fn download_bytes(ctx: &Ctx, url: &str) -> Vec<u8> {
    match ctx.sim.cfg.download_contents.get(url) {
        Some(c) => c.as_bytes().to_vec(),
        None => format!("pve-sim download of {url}\n").into_bytes(),
    }
}

pub fn checksum(algorithm: &str, bytes: &[u8]) -> Option<String> {
    Some(match algorithm {
        "md5" => hex(&md5::Md5::digest(bytes)),
        "sha1" => hex(&sha1::Sha1::digest(bytes)),
        "sha224" => hex(&sha2::Sha224::digest(bytes)),
        "sha256" => hex(&sha2::Sha256::digest(bytes)),
        "sha384" => hex(&sha2::Sha384::digest(bytes)),
        "sha512" => hex(&sha2::Sha512::digest(bytes)),
        _ => return None,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn download_url(ctx: &Ctx) -> ApiResult<Reply> {
    let (cfg, id, node) = (&ctx.sim.cfg, ctx.ident(), ctx.node());
    if perms::check_all(cfg, id, "/", &["Sys.Audit", "Sys.Modify"]).is_err() {
        perms::check_all(cfg, id, &format!("/nodes/{node}"), &["Sys.AccessNetwork"])?;
    }
    let storage = ctx.str("storage").unwrap_or_default();
    let content = ctx.str("content").unwrap_or_default();
    let filename = ctx.str("filename").unwrap_or_default();
    let url = ctx.str("url").unwrap_or_default();
    if content == "vztmpl" && template_format(filename).is_none() {
        return Err(ApiError::param("filename", "wrong file extension"));
    }
    if !storage_cfg(ctx, storage)?.content.iter().any(|c| c == content) {
        return Err(ApiError::server(format!(
            "storage '{storage}' is not configured for content-type '{content}'"
        )));
    }
    let bytes = download_bytes(ctx, url);
    let mut fail = None;
    if let (Some(alg), Some(expected)) = (ctx.str("checksum-algorithm"), ctx.str("checksum")) {
        let got = checksum(alg, &bytes).unwrap_or_default();
        if !got.eq_ignore_ascii_case(expected.trim()) {
            fail = Some(format!(
                "checksum mismatch: got '{got}' != expect '{}'",
                expected.trim()
            ));
        }
    }
    let volid = format!("{storage}:{content}/{filename}");
    let action = Action::Download {
        node: node.into(),
        storage: storage.into(),
        volid,
        size: bytes.len() as u64,
    };
    Ok(ctx.task(
        &mut ctx.sim.state(),
        "download",
        &filename.replace('/', "-"),
        None,
        action,
        fail,
    ))
}

//! The route table: every endpoint the simulator serves, with its handler, declarative
//! permission, whether API tokens may call it, and its parameter rules (see `rules.rs`).

use crate::api::ct_options::CT_OPTIONS;
use crate::api::{access, cluster, lxc, lxc_config, power, snapshot, storage, tasks};
use crate::handler::Handler;
use crate::percent;
use crate::rules::{self, Rule};
use std::sync::OnceLock;

/// The permission PVE checks before the handler runs.
#[derive(Debug, Clone, Copy)]
pub enum Perm {
    /// Any authenticated caller (handlers may filter or check more).
    Any,
    /// No authentication at all (`/access/ticket`).
    NoAuth,
    /// All of these on `/vms/{vmid}`.
    Vm(&'static [&'static str]),
    /// Any of these on `/vms/{vmid}`.
    VmAny(&'static [&'static str]),
    /// All of these on `/storage/{storage}`.
    Storage(&'static [&'static str]),
    /// Any of these on `/storage/{storage}`.
    StorageAny(&'static [&'static str]),
    /// All of these on `/nodes/{node}`.
    Node(&'static [&'static str]),
    /// All of these on `/`.
    Root(&'static [&'static str]),
}

pub struct Route {
    pub method: &'static str,
    /// Below `/api2/json`, with `{param}` segments.
    pub path: &'static str,
    pub handler: Handler,
    pub perm: Perm,
    pub allowtoken: bool,
    pub params: &'static [&'static [&'static str]],
}

const NODE: &[&str] = &["node!:str fmt=pve-node"];
const VMID: &[&str] = &["vmid!:int[100,999999999] fmt=pve-vmid"];

const CT_CREATE: &[&str] = &[
    "bwlimit:num[0,]",
    "force:bool",
    "ha-managed:bool",
    "ignore-unpack-errors:bool",
    "ostemplate!:str max=255",
    "password:str",
    "pool:str fmt=pve-poolid",
    "restore:bool",
    "ssh-public-keys:str",
    "start:bool",
    "storage:str fmt=pve-storage-id",
    "unique:bool req=restore",
];

const CT_UPDATE: &[&str] = &[
    "delete:str fmt=pve-configid-list",
    "digest:str max=40",
    "revert:str fmt=pve-configid-list",
];

const VM_AUDIT: Perm = Perm::Vm(&["VM.Audit"]);
const VM_POWER: Perm = Perm::Vm(&["VM.PowerMgmt"]);
const SNAP: &[&str] = &["snapname!:str fmt=pve-configid max=40"];
const UPID: &[&str] = &["upid!:str"];

macro_rules! route {
    ($m:literal $p:literal, $h:path, $perm:expr, $params:expr) => {
        Route {
            method: $m,
            path: $p,
            handler: $h,
            perm: $perm,
            allowtoken: true,
            params: $params,
        }
    };
}

pub static ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: "/access/ticket",
        handler: access::create_ticket,
        perm: Perm::NoAuth,
        allowtoken: false,
        params: &[&[
            "new-format:bool",
            "otp:str",
            "password!:str",
            "path:str max=64 req=privs",
            "privs:str fmt=pve-priv-list max=64 req=path",
            "realm:str fmt=pve-realm max=32",
            "tfa-challenge:str",
            "username!:str max=64",
        ]],
    },
    route!("GET" "/version", cluster::version, Perm::Any, &[]),
    route!("GET" "/nodes", cluster::nodes, Perm::Any, &[]),
    route!("GET" "/nodes/{node}/status", cluster::node_status, Perm::Node(&["Sys.Audit"]), &[NODE]),
    route!("GET" "/cluster/resources", cluster::resources, Perm::Any, &[&["type:enum(vm|storage|node|sdn)"]]),
    route!("GET" "/cluster/status", cluster::status, Perm::Root(&["Sys.Audit"]), &[]),
    route!("GET" "/cluster/nextid", cluster::nextid, Perm::Any, &[&["vmid:int[100,999999999] fmt=pve-vmid"]]),
    route!("GET" "/nodes/{node}/network", cluster::network, Perm::Any, &[NODE, &[
        "type:enum(bridge|bond|eth|alias|vlan|fabric|OVSBridge|OVSBond|OVSPort|OVSIntPort|vnet|any_bridge|any_local_bridge|include_sdn)",
    ]]),
    route!("GET" "/nodes/{node}/storage", storage::list, Perm::Any, &[NODE, &[
        "content:str fmt=pve-storage-content-list",
        "enabled:bool",
        "format:bool",
        "storage:str fmt=pve-storage-id",
        "target:str fmt=pve-node",
    ]]),
    route!("GET" "/nodes/{node}/storage/{storage}/content", storage::content,
        Perm::StorageAny(&["Datastore.Audit", "Datastore.AllocateSpace"]), &[NODE, &[
        "content:str fmt=pve-storage-content",
        "storage!:str fmt=pve-storage-id",
        "vmid:int[100,999999999] fmt=pve-vmid",
    ]]),
    route!("POST" "/nodes/{node}/storage/{storage}/download-url", storage::download_url,
        Perm::Storage(&["Datastore.AllocateTemplate"]), &[NODE, &[
        "checksum:str req=checksum-algorithm",
        "checksum-algorithm:enum(md5|sha1|sha224|sha256|sha384|sha512) req=checksum",
        "compression:str",
        "content!:enum(iso|vztmpl|import)",
        "filename!:str max=255",
        "storage!:str fmt=pve-storage-id",
        "url!:str fmt=http-url",
        "verify-certificates:bool",
    ]]),
    route!("GET" "/nodes/{node}/aplinfo", storage::aplinfo, Perm::Any, &[NODE]),
    route!("POST" "/nodes/{node}/aplinfo", storage::apl_download, Perm::Storage(&["Datastore.AllocateTemplate"]),
        &[NODE, &["storage!:str fmt=pve-storage-id", "template!:str max=255"]]),
    route!("GET" "/nodes/{node}/lxc", lxc::list, Perm::Any, &[NODE]),
    route!("POST" "/nodes/{node}/lxc", lxc::create, Perm::Vm(&["VM.Allocate"]), &[NODE, VMID, CT_OPTIONS, CT_CREATE]),
    route!("DELETE" "/nodes/{node}/lxc/{vmid}", lxc::destroy, Perm::Vm(&["VM.Allocate"]), &[NODE, VMID, &[
        "destroy-unreferenced-disks:bool",
        "force:bool",
        "purge:bool",
    ]]),
    route!("GET" "/nodes/{node}/lxc/{vmid}/config", lxc_config::get, VM_AUDIT, &[NODE, VMID, &[
        "current:bool",
        "snapshot:str fmt=pve-configid max=40",
    ]]),
    route!("PUT" "/nodes/{node}/lxc/{vmid}/config", lxc_config::update, Perm::VmAny(crate::config::VM_CONFIG_PRIVS),
        &[NODE, VMID, CT_OPTIONS, CT_UPDATE]),
    route!("GET" "/nodes/{node}/lxc/{vmid}/status/current", power::current, VM_AUDIT, &[NODE, VMID]),
    route!("POST" "/nodes/{node}/lxc/{vmid}/status/start", power::start, VM_POWER, &[NODE, VMID, &["debug:bool", "skiplock:bool"]]),
    route!("POST" "/nodes/{node}/lxc/{vmid}/status/stop", power::stop, VM_POWER, &[NODE, VMID, &["overrule-shutdown:bool", "skiplock:bool"]]),
    route!("POST" "/nodes/{node}/lxc/{vmid}/status/shutdown", power::shutdown, VM_POWER, &[NODE, VMID, &["forceStop:bool", "timeout:int[0,]"]]),
    route!("POST" "/nodes/{node}/lxc/{vmid}/status/reboot", power::reboot, VM_POWER, &[NODE, VMID, &["timeout:int[0,]"]]),
    route!("PUT" "/nodes/{node}/lxc/{vmid}/resize", lxc::resize, Perm::Vm(&["VM.Config.Disk"]), &[NODE, VMID, &[
        "digest:str max=40",
        "disk!:enum(rootfs|mp0|mp1|mp2|mp3|mp4|mp5|mp6|mp7|mp8|mp9|mp10|mp11|mp12|mp13|mp14|mp15|mp16|mp17|mp18|mp19|mp20|mp21|mp22|mp23|mp24|mp25|mp26|mp27|mp28|mp29|mp30|mp31|mp32|mp33|mp34|mp35|mp36|mp37|mp38|mp39|mp40|mp41|mp42|mp43|mp44|mp45|mp46|mp47|mp48|mp49|mp50|mp51|mp52|mp53|mp54|mp55|mp56|mp57|mp58|mp59|mp60|mp61|mp62|mp63|mp64|mp65|mp66|mp67|mp68|mp69|mp70|mp71|mp72|mp73|mp74|mp75|mp76|mp77|mp78|mp79|mp80|mp81|mp82|mp83|mp84|mp85|mp86|mp87|mp88|mp89|mp90|mp91|mp92|mp93|mp94|mp95|mp96|mp97|mp98|mp99|mp100|mp101|mp102|mp103|mp104|mp105|mp106|mp107|mp108|mp109|mp110|mp111|mp112|mp113|mp114|mp115|mp116|mp117|mp118|mp119|mp120|mp121|mp122|mp123|mp124|mp125|mp126|mp127|mp128|mp129|mp130|mp131|mp132|mp133|mp134|mp135|mp136|mp137|mp138|mp139|mp140|mp141|mp142|mp143|mp144|mp145|mp146|mp147|mp148|mp149|mp150|mp151|mp152|mp153|mp154|mp155|mp156|mp157|mp158|mp159|mp160|mp161|mp162|mp163|mp164|mp165|mp166|mp167|mp168|mp169|mp170|mp171|mp172|mp173|mp174|mp175|mp176|mp177|mp178|mp179|mp180|mp181|mp182|mp183|mp184|mp185|mp186|mp187|mp188|mp189|mp190|mp191|mp192|mp193|mp194|mp195|mp196|mp197|mp198|mp199|mp200|mp201|mp202|mp203|mp204|mp205|mp206|mp207|mp208|mp209|mp210|mp211|mp212|mp213|mp214|mp215|mp216|mp217|mp218|mp219|mp220|mp221|mp222|mp223|mp224|mp225|mp226|mp227|mp228|mp229|mp230|mp231|mp232|mp233|mp234|mp235|mp236|mp237|mp238|mp239|mp240|mp241|mp242|mp243|mp244|mp245|mp246|mp247|mp248|mp249|mp250|mp251|mp252|mp253|mp254|mp255)",
        "size!:str fmt=disk-size-delta",
    ]]),
    route!("GET" "/nodes/{node}/lxc/{vmid}/interfaces", lxc::interfaces, VM_AUDIT, &[NODE, VMID]),
    route!("POST" "/nodes/{node}/lxc/{vmid}/migrate", lxc::migrate, Perm::Vm(&["VM.Migrate"]), &[NODE, VMID, &[
        "bwlimit:num[0,]",
        "online:bool",
        "restart:bool",
        "target!:str fmt=pve-node",
        "target-storage:str fmt=storage-pair-list",
        "timeout:int",
    ]]),
    route!("GET" "/nodes/{node}/lxc/{vmid}/snapshot", snapshot::list, VM_AUDIT, &[NODE, VMID]),
    route!("POST" "/nodes/{node}/lxc/{vmid}/snapshot", snapshot::create, Perm::Vm(&["VM.Snapshot"]),
        &[NODE, VMID, SNAP, &["description:str"]]),
    route!("DELETE" "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}", snapshot::delete, Perm::Vm(&["VM.Snapshot"]),
        &[NODE, VMID, SNAP, &["force:bool"]]),
    route!("POST" "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback", snapshot::rollback,
        Perm::VmAny(&["VM.Snapshot", "VM.Snapshot.Rollback"]), &[NODE, VMID, SNAP, &["start:bool"]]),
    route!("GET" "/nodes/{node}/tasks/{upid}/status", tasks::status, Perm::Any, &[NODE, UPID]),
    route!("GET" "/nodes/{node}/tasks/{upid}/log", tasks::log, Perm::Any, &[NODE, UPID, &[
        "download:bool",
        "limit:int[0,]",
        "start:int[0,]",
    ]]),
];

/// Finds the route for a concrete path; returns its index and the path parameters.
/// `Err(true)` when the path exists with other methods, `Err(false)` when it does not exist.
pub fn find(method: &str, path: &str) -> Result<(usize, Vec<(String, String)>), bool> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut path_known = false;
    for (i, r) in ROUTES.iter().enumerate() {
        let pat: Vec<&str> = r.path.trim_matches('/').split('/').collect();
        if pat.len() != segs.len() {
            continue;
        }
        let mut params = Vec::new();
        let ok =
            pat.iter().zip(&segs).all(
                |(p, s)| match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(name) => {
                        params.push((name.to_string(), percent::decode(s)));
                        !s.is_empty()
                    }
                    None => p == s,
                },
            );
        if ok {
            path_known = true;
            if r.method == method {
                return Ok((i, params));
            }
        }
    }
    Err(path_known)
}

/// Parsed rules per route index, built once.
pub fn route_rules(index: usize) -> &'static [Rule] {
    static CACHE: OnceLock<Vec<Vec<Rule>>> = OnceLock::new();
    let all = CACHE.get_or_init(|| ROUTES.iter().map(|r| rules::parse_groups(r.params)).collect());
    &all[index]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_table_parses() {
        for (i, route) in ROUTES.iter().enumerate() {
            assert!(!route_rules(i).is_empty() || route.params.is_empty());
        }
    }
}

//! Helpers shared by the API-server tests.

use std::path::{Path, PathBuf};
use std::process::Output;

use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;

/// The repository's top folder.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Runs kubectl against the test control plane.
pub fn kubectl(args: &[&str]) -> Output {
    test_world::control_plane()
        .kubectl()
        .args(args)
        .output()
        .expect("run kubectl")
}

/// kubectl's stdout, failing the test with its stderr when it fails.
pub fn kubectl_ok(args: &[&str]) -> String {
    let out = kubectl(args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A dynamic API for one of our kinds, namespaced for `LxcContainer`.
pub fn api_for(client: kube::Client, kind: &str, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("lxc.infrahaus.dev", "v1alpha1", kind);
    let resource = ApiResource::from_gvk(&gvk);
    if kind == "LxcContainer" {
        Api::namespaced_with(client, namespace, &resource)
    } else {
        Api::all_with(client, &resource)
    }
}

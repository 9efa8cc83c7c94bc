//! Writing what the operator owns on an object: its status, by server-side apply under the one
//! field manager, for any of the three kinds (namespaced or not).

use kube::api::{Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "lxc-operator";

/// Applies `status` as the whole status of `object` (the operator owns every status field).
pub async fn apply_status<K>(kube: &Client, object: &K, status: &impl Serialize) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + std::fmt::Debug,
{
    apply_status_versioned(kube, object, status).await.map(|_| ())
}

/// [`apply_status`], returning the resource version the write produced.
pub async fn apply_status_versioned<K>(
    kube: &Client,
    object: &K,
    status: &impl Serialize,
) -> Result<Option<String>, kube::Error>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + std::fmt::Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status
    });
    let request = kube::core::Request::new(K::url_path(&(), object.namespace().as_deref()))
        .patch_subresource(
            "status",
            &object.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .map_err(kube::Error::BuildRequest)?;
    kube.request::<K>(request).await.map(|o| o.resource_version())
}

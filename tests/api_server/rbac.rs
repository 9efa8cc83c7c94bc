//! RBAC is really on: a ServiceAccount without rights is refused, with a minted token.

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use crate::support::api_for;

#[tokio::test]
async fn service_account_without_rights_gets_403() {
    let cp = test_world::control_plane();
    let admin = cp.client().await;
    let ns = cp.namespace("rbac").await;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "nobody"}})).unwrap(),
        )
        .await
        .unwrap();
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 600}})).unwrap();
    let minted = accounts
        .create_token_request("nobody", &PostParams::default(), &request)
        .await
        .unwrap();
    let token = minted.status.expect("token minted").token;

    let as_nobody = cp.client_with_token(&token).await;
    // The token is valid (authenticated) ...
    let err = api_for(as_nobody.clone(), "LxcContainer", &ns)
        .list(&ListParams::default())
        .await
        .expect_err("listing without a Role must be refused");
    // ... and refused by authorization, not authentication.
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 403, "{}", status.message);
            assert!(
                status
                    .message
                    .contains(&format!("system:serviceaccount:{ns}:nobody")),
                "{}",
                status.message
            );
            assert!(status.message.contains("lxccontainers"), "{}", status.message);
        }
        other => panic!("expected 403, got {other}"),
    }
    // The admin still may: the refusal was about the account's rights.
    let listed = api_for(admin, "LxcContainer", &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(listed.items.is_empty());
}

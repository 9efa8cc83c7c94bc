//! Privileges on ACL paths (`/`, `/vms/{vmid}`, `/storage/{id}`, `/nodes/{node}`, `/sdn`), as
//! PVE computes them: root@pam holds everything; a privilege-separated token holds only its own
//! ACLs (intersected with its user's); propagation down the path tree.

use crate::auth::Identity;
use crate::config::{AclEntry, Config, VM_CONFIG_PRIVS};
use crate::error::ApiError;

fn entry_grants(entry: &AclEntry, path: &str, privilege: &str) -> bool {
    let applies = entry.path == path
        || (entry.propagate && (entry.path == "/" || path.starts_with(&format!("{}/", entry.path))));
    applies
        && entry
            .privs
            .iter()
            .any(|p| p == privilege || (p == "VM.Config.*" && VM_CONFIG_PRIVS.contains(&privilege)))
}

fn user_has(cfg: &Config, user: &str, path: &str, privilege: &str) -> bool {
    user == "root@pam"
        || cfg
            .users
            .iter()
            .filter(|u| u.userid == user)
            .flat_map(|u| &u.acl)
            .any(|e| entry_grants(e, path, privilege))
}

/// Whether `id` holds `privilege` on `path`.
pub fn has(cfg: &Config, id: &Identity, path: &str, privilege: &str) -> bool {
    let user_ok = user_has(cfg, &id.user, path, privilege);
    match &id.token {
        None => user_ok,
        Some(_) => {
            let authid = id.authid();
            let Some(token) = cfg.tokens.iter().find(|t| t.tokenid == authid) else {
                return false;
            };
            user_ok && (!token.privsep || token.acl.iter().any(|e| entry_grants(e, path, privilege)))
        }
    }
}

/// All of `privs` on `path`, else 403 `Permission check failed (<path>, <priv>)`.
pub fn check_all(cfg: &Config, id: &Identity, path: &str, privs: &[&str]) -> Result<(), ApiError> {
    match privs.iter().find(|p| !has(cfg, id, path, p)) {
        Some(missing) => Err(ApiError::Perm(format!("{path}, {missing}"))),
        None => Ok(()),
    }
}

/// Any of `privs` on `path`, else 403 `Permission check failed (<path>, A|B)`.
pub fn check_any(cfg: &Config, id: &Identity, path: &str, privs: &[&str]) -> Result<(), ApiError> {
    if privs.iter().any(|p| has(cfg, id, path, p)) {
        Ok(())
    } else {
        Err(ApiError::Perm(format!("{path}, {}", privs.join("|"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OPERATOR_TOKEN_ID;

    #[test]
    fn operator_token_rights() {
        let cfg = Config::default();
        let (user, token) = OPERATOR_TOKEN_ID.split_once('!').unwrap();
        let tok = Identity {
            user: user.into(),
            token: Some(token.into()),
        };
        assert!(has(&cfg, &tok, "/vms/100", "VM.Allocate"));
        assert!(has(&cfg, &tok, "/vms/100", "VM.Config.Disk"));
        assert!(has(&cfg, &tok, "/storage/local", "Datastore.AllocateTemplate"));
        assert!(has(&cfg, &tok, "/", "Sys.Audit"));
        assert!(!has(&cfg, &tok, "/", "Sys.Modify"));
        assert!(!has(&cfg, &tok, "/vms/100", "VM.Backup"));
        assert_eq!(
            check_all(&cfg, &tok, "/", &["Sys.Modify"])
                .unwrap_err()
                .to_string(),
            "Permission check failed (/, Sys.Modify)"
        );
        let root = Identity {
            user: "root@pam".into(),
            token: None,
        };
        assert!(has(&cfg, &root, "/", "Sys.Modify"));
        let unknown = Identity {
            user: "root@pam".into(),
            token: Some("nope".into()),
        };
        assert!(!has(&cfg, &unknown, "/vms/100", "VM.Audit"));
    }
}

//! Pipeline users and their permissions (`HOOKFLOW_USERS`).
//!
//! A pipeline starts as `anonymousUser`, who holds no permission; `iam.run.as`
//! switches to another user. `systemuser` holds every permission. Others are
//! configured as `name=perm,perm;name=*`, e.g. `mailer=mail.send;ops=*`.

use std::collections::{BTreeMap, BTreeSet};

/// The user every pipeline starts as.
pub const ANONYMOUS_USER: &str = "anonymousUser";
/// The user holding every permission.
pub const SYSTEM_USER: &str = "systemuser";
/// Permissions a user can hold: the commands with outside effects.
pub const PERMISSIONS: &[&str] = &["mail.send", "webhook.send"];

/// Who may run which guarded command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Users {
    grants: BTreeMap<String, BTreeSet<String>>,
}

impl Default for Users {
    fn default() -> Self {
        let mut grants = BTreeMap::new();
        grants.insert(SYSTEM_USER.to_owned(), BTreeSet::from(["*".to_owned()]));
        grants.insert(ANONYMOUS_USER.to_owned(), BTreeSet::new());
        Users { grants }
    }
}

impl Users {
    /// Parses `name=perm,perm;name=*`; unknown permissions and malformed names are refused.
    pub fn parse(config: &str) -> Result<Users, String> {
        let mut users = Users::default();
        for entry in config.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, perms) = entry.split_once('=').ok_or_else(|| {
                format!("'{entry}' is not of the form name=permission,permission")
            })?;
            let name = name.trim();
            let name_ok = !name.is_empty()
                && name.len() <= 100
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
            if !name_ok {
                return Err(format!(
                    "'{name}' is not a valid user name (letters, digits, . _ @ -)"
                ));
            }
            if name == SYSTEM_USER {
                return Err(format!(
                    "{SYSTEM_USER} always holds every permission and cannot be configured"
                ));
            }
            let mut granted = BTreeSet::new();
            for perm in perms.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if perm != "*" && !PERMISSIONS.contains(&perm) {
                    return Err(format!(
                        "unknown permission '{perm}' (known: *, {})",
                        PERMISSIONS.join(", ")
                    ));
                }
                granted.insert(perm.to_owned());
            }
            users.grants.insert(name.to_owned(), granted);
        }
        Ok(users)
    }

    /// Whether `user` is known.
    pub fn exists(&self, user: &str) -> bool {
        self.grants.contains_key(user)
    }

    /// Whether `user` holds `permission`.
    pub fn allows(&self, user: &str, permission: &str) -> bool {
        self.grants
            .get(user)
            .is_some_and(|perms| perms.contains("*") || perms.contains(permission))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_configuration() {
        let users = Users::parse(" mailer = mail.send ; ops=* ;").unwrap();
        assert!(
            users.allows(SYSTEM_USER, "mail.send") && users.allows(SYSTEM_USER, "webhook.send")
        );
        assert!(!users.allows(ANONYMOUS_USER, "mail.send"));
        assert!(users.allows("mailer", "mail.send") && !users.allows("mailer", "webhook.send"));
        assert!(users.allows("ops", "webhook.send"));
        assert!(!users.exists("nobody") && !users.allows("nobody", "mail.send"));
        assert!(
            Users::parse("x=rm.rf")
                .unwrap_err()
                .contains("unknown permission")
        );
        assert!(Users::parse("x").is_err());
        assert!(Users::parse("bad name=*").is_err());
        assert!(Users::parse("systemuser=mail.send").is_err());
    }
}

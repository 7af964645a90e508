//! Who may do what: the four roles of the issue ("admin" for Diskominfo,
//! "operator" for the NOC, "agency" for one agency's IT officer, "viewer"
//! for the wall) and the access level each route asks for.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An operator's or token's role. An agency officer is bound to one agency.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "role", content = "agency", rename_all = "snake_case")]
pub enum Role {
    Admin,
    Operator,
    Agency(String),
    Viewer,
}

/// Why a role name given on the command line or in the API was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error("unknown role {0:?}: one of admin, operator, agency, viewer")]
    Unknown(String),
    #[error("role agency needs --agency CODE (the one agency this account sees)")]
    AgencyMissing,
    #[error("only role agency is bound to an agency; {0} sees every agency")]
    AgencyNotAllowed(&'static str),
}

impl Role {
    /// From its stored form: the name and, for `agency`, the agency code.
    pub fn parse(name: &str, agency: Option<&str>) -> Result<Role, RoleError> {
        let agency = agency.map(str::trim).filter(|a| !a.is_empty());
        let plain = |r: Role, n: &'static str| match agency {
            None => Ok(r),
            Some(_) => Err(RoleError::AgencyNotAllowed(n)),
        };
        match name.trim() {
            "admin" => plain(Role::Admin, "admin"),
            "operator" => plain(Role::Operator, "operator"),
            "viewer" => plain(Role::Viewer, "viewer"),
            "agency" => agency
                .map(|a| Role::Agency(a.to_string()))
                .ok_or(RoleError::AgencyMissing),
            other => Err(RoleError::Unknown(other.chars().take(40).collect())),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Agency(_) => "agency",
            Role::Viewer => "viewer",
        }
    }

    /// The agency an account is confined to (None: sees every agency).
    pub fn agency(&self) -> Option<&str> {
        match self {
            Role::Agency(a) => Some(a),
            _ => None,
        }
    }

    /// Whether this role may use a route of the given access level.
    pub fn allows(&self, access: Access) -> bool {
        match access {
            Access::Public => true,
            Access::Wall => true,
            Access::Read => !matches!(self, Role::Viewer),
            Access::Operate => matches!(self, Role::Admin | Role::Operator),
            Access::Admin => matches!(self, Role::Admin),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Agency(a) => write!(f, "agency:{a}"),
            r => f.write_str(r.name()),
        }
    }
}

/// What a route asks of the caller. Every route of the router names one
/// (`routes.rs`), and a test walks every route with every role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// No login: `/healthz`, the login endpoints, the page's files, the
    /// agent endpoint (it authenticates agents itself).
    Public,
    /// Every role, the viewer's wall included: aggregated figures without
    /// client addresses (overview, nodes, agencies, incidents, the live feed).
    Wall,
    /// Every role but the viewer: flows, hosts and blocked attempts with
    /// client addresses. Agency officers get their agency only.
    Read,
    /// The NOC's actions: acknowledgements, maintenance windows, the
    /// notification log.
    Operate,
    /// Diskominfo: users, tokens, enrollment, revocation, audit, policy.
    Admin,
}

impl Access {
    pub fn name(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Wall => "wall",
            Access::Read => "read",
            Access::Operate => "operate",
            Access::Admin => "admin",
        }
    }

    /// The roles allowed, for the OpenAPI document.
    pub fn roles(self) -> &'static [&'static str] {
        match self {
            Access::Public => &[],
            Access::Wall => &["admin", "operator", "agency", "viewer"],
            Access::Read => &["admin", "operator", "agency"],
            Access::Operate => &["admin", "operator"],
            Access::Admin => &["admin"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_with_their_agency_only() {
        assert_eq!(Role::parse("admin", None), Ok(Role::Admin));
        assert_eq!(
            Role::parse("agency", Some("dinkes")),
            Ok(Role::Agency("dinkes".into()))
        );
        assert_eq!(Role::parse("agency", None), Err(RoleError::AgencyMissing));
        assert_eq!(
            Role::parse("viewer", Some("dinkes")),
            Err(RoleError::AgencyNotAllowed("viewer"))
        );
        assert!(matches!(
            Role::parse("root", None),
            Err(RoleError::Unknown(_))
        ));
    }

    #[test]
    fn each_level_admits_exactly_its_roles() {
        let roles = [
            Role::Admin,
            Role::Operator,
            Role::Agency("dinkes".into()),
            Role::Viewer,
        ];
        for access in [
            Access::Public,
            Access::Wall,
            Access::Read,
            Access::Operate,
            Access::Admin,
        ] {
            let allowed: Vec<&str> = roles
                .iter()
                .filter(|r| r.allows(access))
                .map(Role::name)
                .collect();
            if access == Access::Public {
                assert_eq!(allowed.len(), 4);
            } else {
                assert_eq!(allowed, access.roles(), "{access:?}");
            }
        }
    }
}

//! CIDR text as written in inventories and policies.

use ipnetwork::IpNetwork;

/// Parse "a.b.c.d/n" or "v6/n" (a bare address is a /32 or /128); host bits
/// must be zero so typos are caught.
pub fn parse_cidr(s: &str) -> Result<IpNetwork, String> {
    let net: IpNetwork = s
        .trim()
        .parse()
        .map_err(|e| format!("{s:?} is not a CIDR: {e}"))?;
    if net.network() != net.ip() {
        return Err(format!(
            "{s:?} has host bits set (did you mean {}/{}?)",
            net.network(),
            net.prefix()
        ));
    }
    Ok(net)
}

pub fn overlaps(a: &IpNetwork, b: &IpNetwork) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert!(parse_cidr("10.0.0.0/8").is_ok());
        assert!(parse_cidr("10.0.0.1").is_ok());
        assert!(parse_cidr("10.0.0.1/8").unwrap_err().contains("host bits"));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        let a = parse_cidr("10.1.0.0/16").unwrap();
        let b = parse_cidr("10.1.2.0/24").unwrap();
        assert!(overlaps(&a, &b) && overlaps(&b, &a));
        assert!(!overlaps(&b, &parse_cidr("10.1.3.0/24").unwrap()));
    }
}

//! Opaque identifiers and random secrets.

use rand::distributions::Alphanumeric;
use rand::Rng;

/// A new identifier such as `ride_7Fq2…`: a kind prefix and 20 random alphanumerics.
pub fn new_id(prefix: &str) -> String {
    let mut id = String::with_capacity(prefix.len() + 21);
    id.push_str(prefix);
    id.push('_');
    id.extend(
        rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(20)
            .map(char::from),
    );
    id
}

/// A random secret of `len` alphanumerics (about 5.95 bits each), from the OS-seeded CSPRNG.
pub fn new_secret(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_kind_and_differ() {
        let a = new_id("ride");
        let b = new_id("ride");
        assert!(a.starts_with("ride_") && a.len() == 25);
        assert_ne!(a, b);
        assert_eq!(new_secret(64).len(), 64);
    }
}

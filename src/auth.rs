//! Bearer tokens: trials push their metrics with one each, administrators hold the server's.

use rand::RngExt;

/// A new random token: 32 bytes from the OS-seeded generator, hex-encoded (64 characters).
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares a presented token with the expected one without stopping at the first differing
/// byte, so response timing says nothing about how much of a guess was right.
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    let (a, b) = (presented.as_bytes(), expected.as_bytes());
    if a.len() != b.len() || b.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_distinct_and_hex() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn only_the_same_token_matches() {
        let token = new_token();
        assert!(tokens_match(&token, &token));
        assert!(!tokens_match(&token[..63], &token));
        assert!(!tokens_match(&new_token(), &token));
        assert!(!tokens_match("", ""));
    }
}

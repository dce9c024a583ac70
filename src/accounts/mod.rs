//! Accounts: riders sign up with an email and a password; crews and operators are created
//! by operators. Email and password are all the service asks for.

pub mod http;
mod limiter;
pub mod store;

pub use limiter::LoginLimiter;
pub use store::ensure_operator;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted (hashing cost is bounded).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// The email as stored and compared: trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A plausible address: one `@`, a non-empty local part, a dotted domain, no spaces.
/// Whether it receives mail is not ours to prove at signup.
pub fn is_valid_email(email: &str) -> bool {
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// Why a password is refused, as a sentence for the rider; `None` when it is acceptable.
pub fn password_weakness(password: &str, email: &str) -> Option<String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Some(format!(
            "Please choose a password of at least {MIN_PASSWORD_CHARS} characters."
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Some(format!(
            "Please choose a password of at most {MAX_PASSWORD_CHARS} characters."
        ));
    }
    let lower = password.to_lowercase();
    let distinct = {
        let mut seen: Vec<char> = lower.chars().collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    };
    if distinct < 4 || COMMON_PASSWORDS.contains(&lower.as_str()) {
        return Some("This password is too easy to guess; please choose another.".into());
    }
    let local = normalize_email(email);
    let local = local.split('@').next().unwrap_or_default();
    if !local.is_empty() && lower.contains(local) && local.len() >= 4 {
        return Some("Please choose a password that does not contain your email address.".into());
    }
    None
}

/// Passwords that appear at the top of every leaked list.
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "password1",
    "password123",
    "12345678",
    "123456789",
    "1234567890",
    "qwertyuiop",
    "qwerty123",
    "azertyuiop",
    "iloveyou",
    "sunshine",
    "football",
    "baseball",
    "welcome1",
    "letmein1",
    "abcd1234",
    "abc12345",
    "trustno1",
    "princess",
    "dragon123",
    "monkey123",
    "passw0rd",
    "p@ssw0rd",
    "superman",
    "starwars",
    "whatever",
    "scootfleet",
    "motdepasse",
    "11111111",
    "00000000",
    "87654321",
    "qwertyui",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["rider@example.com", "a.b+c@sub.example.fr", "x@y.co"] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@b..c",
            "a b@c.d",
            "a@@b.c",
            "a@.b.c",
            "a@b.c.",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        assert!(password_weakness("short", "a@b.c").is_some());
        assert!(password_weakness("password", "a@b.c").is_some());
        assert!(password_weakness("aaaaaaaaaaaa", "a@b.c").is_some());
        assert!(password_weakness("julietterides", "juliette@b.c").is_some());
        assert!(password_weakness("correct horse battery", "a@b.c").is_none());
        assert!(password_weakness(&"x1y2".repeat(65), "a@b.c").is_some());
    }
}

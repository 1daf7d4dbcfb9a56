//! "Did you mean ...?" hints for misspelt keywords, flags and mount options.

/// The candidate closest to `input` (ignoring case), if it is close enough to be a typo.
pub(crate) fn closest<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let input = input.to_lowercase();
    let len = input.chars().count();
    let limit = 2.max(len / 4);
    candidates
        .iter()
        .map(|c| (distance(&input, &c.to_lowercase()), *c))
        .filter(|&(d, _)| d <= limit && d < len)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// `message`, plus a suggestion when one of `candidates` is close to `input`.
pub(crate) fn with_hint(message: String, input: &str, candidates: &[&str]) -> String {
    match closest(input, candidates) {
        Some(hint) => format!("{message} (did you mean {hint}?)"),
        None => message,
    }
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_misses_only() {
        assert_eq!(distance("form", "from"), 2);
        assert_eq!(closest("FORM", &["FROM", "RUN"]), Some("FROM"));
        assert_eq!(closest("rn", &["FROM", "RUN"]), Some("RUN"));
        assert_eq!(closest("xyz", &["FROM", "RUN"]), None);
    }
}

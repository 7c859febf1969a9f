//! The stored form of a [`Binding`]'s client options. `Binding` and `BindingChange` themselves live in
//! `leasewire-proto`, so the sans-IO sessions there can turn changes into messages without a conversion.

/// Stored options as one compact blob: for each option its code, a 2-octet big-endian length, the value.
pub(crate) fn encode_options(options: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(options.iter().map(|(_, v)| 3 + v.len()).sum());
    write_options(&mut out, options);
    out
}

/// Append the blob of [`encode_options`] to `out`.
pub(crate) fn write_options(out: &mut Vec<u8>, options: &[(u8, Vec<u8>)]) {
    for (code, value) in options {
        out.push(*code);
        // `Binding::validate` bounds the length; saturate rather than panic if a caller skipped it.
        out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(value);
    }
}

/// The inverse of [`encode_options`]; `None` if the blob is not well formed (a damaged file).
pub(crate) fn decode_options(mut blob: &[u8]) -> Option<Vec<(u8, Vec<u8>)>> {
    let mut out = Vec::new();
    while !blob.is_empty() {
        let [code, hi, lo, rest @ ..] = blob else { return None };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let value = rest.get(..len)?;
        out.push((*code, value.to_vec()));
        blob = &rest[len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_blob_round_trips_and_rejects_truncation() {
        let opts = vec![(12, b"host".to_vec()), (60, vec![]), (77, vec![7; 300])];
        let blob = encode_options(&opts);
        assert_eq!(decode_options(&blob), Some(opts));
        assert_eq!(decode_options(&[]), Some(vec![]));
        assert_eq!(decode_options(&blob[..blob.len() - 1]), None);
        assert_eq!(decode_options(&[12, 0]), None);
    }
}

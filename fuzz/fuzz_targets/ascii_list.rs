//! ASCII list parser (`engine::ascii`): never panics, and every accepted line re-renders from
//! its parsed record and parses again to the same record.
#![no_main]

use imafs::engine::ascii::parse_ascii_list;
use imafs::engine::hash::HashAlgo;
use libfuzzer_sys::fuzz_target;

const BANKS: [HashAlgo; 2] = [HashAlgo::Sha1, HashAlgo::Sha256];

fuzz_target!(|data: &[u8]| {
    let Ok(list) = parse_ascii_list(data, None, &BANKS) else {
        return;
    };
    let bank = BANKS.iter().position(|&b| b == list.file_bank);
    for e in &list.entries {
        let rec = &e.record;
        let mut line = format!("{:2} ", rec.pcr()).into_bytes();
        line.extend_from_slice(e.printed_digest.to_hex().as_bytes());
        line.push(b' ');
        line.extend_from_slice(rec.template().display_name().as_bytes());
        rec.template()
            .render_ascii_fields(rec.template_data(), &mut line);
        let again = parse_ascii_list(&line, Some(list.file_bank), &BANKS)
            .unwrap_or_else(|err| panic!("{err}: {:?}", String::from_utf8_lossy(&line)));
        assert_eq!(again.entries.len(), 1);
        assert_eq!(again.entries[0].record, *rec);
        assert_eq!(again.entries[0].digest_matches, e.digest_matches);
        if let (Some(b), true) = (bank, e.digest_matches && !rec.is_violation()) {
            assert_eq!(rec.digest(b), e.printed_digest);
        }
    }
});

//! Journal recovery (`engine::journal::scan`) and the TPM response parsers: never panic on
//! any bytes; an accepted journal re-encodes to a file that scans to the same entries with
//! no torn tail.
#![no_main]

use imafs::engine::journal::{frame, header, scan, HEADER_LEN};
use imafs::engine::tpm::{parse_pcr_banks, parse_pcr_read, response_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_pcr_banks(data);
    let _ = parse_pcr_read(data);
    let _ = response_body(data);
    let Ok(s) = scan(data) else {
        return;
    };
    assert!(s.valid_len as usize <= data.len());
    if let Some(t) = &s.torn {
        assert_eq!(t.offset, s.valid_len);
        assert_eq!((t.offset + t.bytes) as usize, data.len());
    }
    let mut again = header().to_vec();
    for e in &s.entries {
        again.extend_from_slice(&frame(&e.encode()));
    }
    let re = scan(&again).expect("a re-encoded journal scans");
    assert_eq!(re.entries, s.entries);
    assert!(re.torn.is_none());
    // Entries encode canonically (the header's reserved bytes are not checked).
    if s.valid_len as usize >= HEADER_LEN {
        assert_eq!(&again[HEADER_LEN..], &data[HEADER_LEN..s.valid_len as usize]);
    }
});

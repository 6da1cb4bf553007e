//! PCR banks (security/integrity/ima/ima_queue.c: ima_pcr_extend) and the boot aggregate
//! (ima_init.c: ima_add_boot_aggregate; ima_crypto.c: ima_calc_boot_aggregate).
//!
//! There is no TPM behind these values: they are the "virtual PCRs" a verifier replays
//! from the list, kept per bank for every PCR index IMA extended (10 by default, or any
//! `pcr=` of a measure rule).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::engine::hash::{Digest, HashAlgo};
use crate::engine::measurement_list::{MeasurementList, Record};
use crate::engine::template::{EventData, TemplateDesc};

/// The default measurement PCR (`CONFIG_IMA_MEASURE_PCR_IDX`).
pub const DEFAULT_PCR: u32 = 10;
/// Event name of the first list entry.
pub const BOOT_AGGREGATE_NAME: &str = "boot_aggregate";
/// The banks used when none are configured.
pub const DEFAULT_BANKS: [HashAlgo; 2] = [HashAlgo::Sha1, HashAlgo::Sha256];

/// Values of the PCRs IMA extended, one per configured bank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrBanks {
    banks: Vec<HashAlgo>,
    /// PCR index -> value per bank, in bank order.
    values: BTreeMap<u32, Vec<Digest>>,
}

impl PcrBanks {
    /// All PCRs zero (PCRs 10-14 are reset at boot) for banks `banks`, in that order.
    pub fn new(banks: &[HashAlgo]) -> Self {
        PcrBanks {
            banks: banks.to_vec(),
            values: BTreeMap::new(),
        }
    }

    pub fn banks(&self) -> &[HashAlgo] {
        &self.banks
    }

    /// `PCR_b := H_b(PCR_b || values[b])` for every bank b; `values` in bank order (one
    /// per bank; missing ones leave that bank unchanged). A bank whose algorithm cannot be
    /// computed keeps its value.
    pub fn extend(&mut self, pcr: u32, values: &[Digest]) {
        let banks = &self.banks;
        let current = self
            .values
            .entry(pcr)
            .or_insert_with(|| banks.iter().map(|&b| Digest::zero(b)).collect());
        for ((slot, &algo), value) in current.iter_mut().zip(banks).zip(values) {
            if let Some(mut h) = algo.hasher() {
                h.update(slot.as_bytes());
                h.update(value.as_bytes());
                *slot = h.finalize();
            }
        }
    }

    /// Extend `rec`'s PCR with its extend values (0xff.. for violations).
    pub fn extend_record(&mut self, rec: &Record) {
        self.extend(rec.pcr(), &rec.extend_values());
    }

    /// Value of `pcr` in bank `bank`; zeros if never extended or not a configured bank.
    pub fn value(&self, pcr: u32, bank: HashAlgo) -> Digest {
        let Some(b) = self.banks.iter().position(|&x| x == bank) else {
            return Digest::zero(bank);
        };
        self.values
            .get(&pcr)
            .and_then(|v| v.get(b).copied())
            .unwrap_or(Digest::zero(bank))
    }

    /// PCR indexes extended at least once, sorted.
    pub fn used(&self) -> Vec<u32> {
        self.values.keys().copied().collect()
    }
}

/// Replay `list` from all-zero PCRs, as a verifier does (7): the values the PCRs hold.
pub fn replay(list: &MeasurementList) -> PcrBanks {
    let mut pcrs = PcrBanks::new(list.banks());
    let nbanks = list.banks().len();
    let n = list.len();
    let mut start = 0;
    // Batches keep each read-lock hold short on long lists.
    while start < n {
        let end = (start + 4096).min(n);
        let mut batch = Vec::with_capacity((end - start) as usize);
        list.for_each(start, end, |r| {
            batch.push((
                r.pcr,
                (0..nbanks).map(|b| r.extend_value(b)).collect::<Vec<_>>(),
            ))
        });
        for (pcr, values) in batch {
            pcrs.extend(pcr, &values);
        }
        start = end;
    }
    pcrs
}

/// The boot aggregate from PCR values of one bank (`ima_calc_boot_aggregate_tfm`):
/// `H(PCR0 || ... || PCR7)` for sha1, `H(PCR0 || ... || PCR9)` for other banks. Extra
/// values are ignored; missing ones are not hashed. Zeros if `bank` cannot be computed.
pub fn boot_aggregate_from_pcrs(bank: HashAlgo, pcrs: &[Digest]) -> Digest {
    let count = if bank == HashAlgo::Sha1 { 8 } else { 10 };
    let Some(mut h) = bank.hasher() else {
        return Digest::zero(bank);
    };
    for p in pcrs.iter().take(count) {
        h.update(p.as_bytes());
    }
    h.finalize()
}

/// Event data of the `boot_aggregate` entry without a TPM (ima_init.c:
/// ima_add_boot_aggregate; ima_template_lib.c: ima_eventdigest_init): a zero digest of
/// `ima_hash`'s size labelled with `ima_hash`; the `ima` template's `d` gets 20 zero bytes
/// (or the zero md5/sha1 digest itself when `ima_hash` is md5/sha1).
pub fn boot_aggregate_event(ima_hash: HashAlgo) -> EventData<'static> {
    EventData {
        digest: Some(Digest::zero(ima_hash)),
        hash_algo: ima_hash,
        sha1_or_md5_digest: Some(Digest::zero(HashAlgo::Sha1)),
        name: BOOT_AGGREGATE_NAME.as_bytes(),
        ..Default::default()
    }
}

/// Event data of the `boot_aggregate` entry with a TPM: `aggregate` computed with the
/// chosen bank (see [`boot_aggregate_from_pcrs`]) and, for the `ima` template, the sha1
/// aggregate if the TPM has a sha1 bank (`None` records 20 zero bytes).
pub fn boot_aggregate_event_tpm(
    ima_hash: HashAlgo,
    aggregate: Digest,
    sha1_aggregate: Option<Digest>,
) -> EventData<'static> {
    EventData {
        digest: Some(aggregate),
        hash_algo: ima_hash,
        sha1_or_md5_digest: Some(sha1_aggregate.unwrap_or(Digest::zero(HashAlgo::Sha1))),
        name: BOOT_AGGREGATE_NAME.as_bytes(),
        ..Default::default()
    }
}

/// The TPM-less `boot_aggregate` record for `template`, to be appended first.
pub fn boot_aggregate_record(
    pcr: u32,
    template: Arc<TemplateDesc>,
    ima_hash: HashAlgo,
    banks: &[HashAlgo],
) -> Record {
    Record::new(pcr, template, &boot_aggregate_event(ima_hash), banks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::measurement_list::ViewKind;

    fn ima_ng() -> Arc<TemplateDesc> {
        Arc::new(TemplateDesc::builtin("ima-ng").unwrap())
    }

    /// The reference list T2, T1, T5: boot_aggregate without a TPM, the ima-ng entry for
    /// /tmp/hello and its violation entry (vectors described in `ascii.rs`'s tests).
    fn t_list() -> MeasurementList {
        let list = MeasurementList::new(&DEFAULT_BANKS);
        list.append(boot_aggregate_record(
            DEFAULT_PCR,
            ima_ng(),
            HashAlgo::Sha256,
            &DEFAULT_BANKS,
        ));
        let hello = EventData {
            digest: HashAlgo::Sha256.digest(b"hello\n"),
            name: b"/tmp/hello",
            ..Default::default()
        };
        list.append(Record::new(10, ima_ng(), &hello, &DEFAULT_BANKS));
        let violation = EventData {
            violation: true,
            name: b"/tmp/hello",
            ..Default::default()
        };
        list.append(Record::new(10, ima_ng(), &violation, &DEFAULT_BANKS));
        list
    }

    #[test]
    fn t6_pcr10_replay_step_by_step() {
        let list = t_list();
        let expect = [
            (
                "5141100982188d48fb6fa0f19a8d27e3eabd703b",
                "35d08f4de6c76c315d9ea3e5fea0305fc1e902506504f80d7c98d6d4e6e33072",
            ),
            (
                "cfc74256179fe23cd59216406bd1b6e48a1e0e64",
                "03906711a8eb98413a7a94e4f912355352613de272b2489ada2bebcba2fba45a",
            ),
            (
                "652f26ba8600dec490d4f70214bc63bc5b9f034b",
                "9f1bad35a4facd01a0d47fcb55e0448ba187b439fc90946d48d338f7b95895d2",
            ),
        ];
        let mut pcrs = PcrBanks::new(&DEFAULT_BANKS);
        assert!(pcrs.value(10, HashAlgo::Sha1).is_zero());
        for (i, (sha1, sha256)) in expect.iter().enumerate() {
            pcrs.extend_record(&list.record(i as u64).unwrap());
            assert_eq!(pcrs.value(10, HashAlgo::Sha1).to_hex(), *sha1);
            assert_eq!(pcrs.value(10, HashAlgo::Sha256).to_hex(), *sha256);
        }
        assert_eq!(replay(&list), pcrs);
        assert_eq!(pcrs.used(), vec![10]);
        // The boot aggregate line is T2's.
        let mut buf = vec![0u8; 200];
        let n = list.read(ViewKind::Ascii, 0, 0, &mut buf);
        let line = std::str::from_utf8(&buf[..n])
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string();
        assert_eq!(
            line,
            format!(
                "10 0adefe762c149c7cec19da62f0da1297fcfbffff ima-ng sha256:{} boot_aggregate",
                "0".repeat(64)
            )
        );
    }

    #[test]
    fn pcrs_are_kept_per_index_and_bank() {
        let banks = [HashAlgo::Sha256, HashAlgo::Sha384, HashAlgo::Sha512];
        let mut pcrs = PcrBanks::new(&banks);
        let d = |a: HashAlgo| a.digest(b"x").unwrap();
        pcrs.extend(
            11,
            &[
                d(HashAlgo::Sha256),
                d(HashAlgo::Sha384),
                d(HashAlgo::Sha512),
            ],
        );
        pcrs.extend(
            8,
            &[
                d(HashAlgo::Sha256),
                d(HashAlgo::Sha384),
                d(HashAlgo::Sha512),
            ],
        );
        assert_eq!(pcrs.used(), vec![8, 11]);
        for a in banks {
            let want = a
                .digest(&[Digest::zero(a).as_bytes(), d(a).as_bytes()].concat())
                .unwrap();
            assert_eq!(pcrs.value(11, a), want);
            assert_eq!(pcrs.value(8, a), want);
            assert!(pcrs.value(10, a).is_zero());
        }
        assert_eq!(pcrs.value(11, HashAlgo::Sha1), Digest::zero(HashAlgo::Sha1));
    }

    #[test]
    fn replay_follows_pcr_of_each_record() {
        let list = MeasurementList::new(&DEFAULT_BANKS);
        let mut direct = PcrBanks::new(&DEFAULT_BANKS);
        for i in 0..10u32 {
            let name = format!("/f{i}");
            let ev = EventData {
                digest: HashAlgo::Sha256.digest(name.as_bytes()),
                name: name.as_bytes(),
                violation: i == 4,
                ..Default::default()
            };
            let rec = Record::new(10 + i % 3, ima_ng(), &ev, &DEFAULT_BANKS);
            direct.extend_record(&rec);
            list.append(rec);
        }
        let replayed = replay(&list);
        assert_eq!(replayed, direct);
        assert_eq!(replayed.used(), vec![10, 11, 12]);
    }

    #[test]
    fn boot_aggregate_from_pcr_values() {
        let sha1_pcrs: Vec<Digest> = (0..10u8)
            .map(|i| Digest::from_bytes(HashAlgo::Sha1, &[i; 20]).unwrap())
            .collect();
        let concat: Vec<u8> = (0..8u8).flat_map(|i| [i; 20]).collect();
        assert_eq!(
            boot_aggregate_from_pcrs(HashAlgo::Sha1, &sha1_pcrs),
            HashAlgo::Sha1.digest(&concat).unwrap()
        );
        let sha256_pcrs: Vec<Digest> = (0..10u8)
            .map(|i| Digest::from_bytes(HashAlgo::Sha256, &[i; 32]).unwrap())
            .collect();
        let concat: Vec<u8> = (0..10u8).flat_map(|i| [i; 32]).collect();
        assert_eq!(
            boot_aggregate_from_pcrs(HashAlgo::Sha256, &sha256_pcrs),
            HashAlgo::Sha256.digest(&concat).unwrap()
        );
        // All-zero PCRs 0-7, sha1: the well-known value of a TPM whose PCRs were never extended.
        let zeros = vec![Digest::zero(HashAlgo::Sha1); 8];
        assert_eq!(
            boot_aggregate_from_pcrs(HashAlgo::Sha1, &zeros),
            HashAlgo::Sha1.digest(&[0u8; 160]).unwrap()
        );
    }

    #[test]
    fn boot_aggregate_entries_per_template() {
        // ima template, ima_hash=sha256: d is 20 zero bytes (ima_template_lib.c:
        // ima_eventdigest_init).
        let ima = Arc::new(TemplateDesc::builtin("ima").unwrap());
        let rec = boot_aggregate_record(10, ima, HashAlgo::Sha256, &DEFAULT_BANKS);
        assert_eq!(
            rec.digest(0).to_hex(),
            "719de8e521439498e9b77f6ed41e230b9821111e"
        );
        assert!(!rec.is_violation());
        // ima-ng, ima_hash=sha1: sha1: prefix and 20 zero bytes.
        let rec = boot_aggregate_record(10, ima_ng(), HashAlgo::Sha1, &DEFAULT_BANKS);
        let mut expect = vec![26, 0, 0, 0];
        expect.extend_from_slice(b"sha1:\0");
        expect.extend_from_slice(&[0; 20]);
        assert_eq!(&rec.template_data()[..30], &expect[..]);
        // With a TPM the d-ng field names the aggregate's bank.
        let agg = HashAlgo::Sha256.digest(b"pcrs").unwrap();
        let ev = boot_aggregate_event_tpm(HashAlgo::Sha256, agg, None);
        let rec = Record::new(10, ima_ng(), &ev, &DEFAULT_BANKS);
        assert_eq!(&rec.template_data()[12..44], agg.as_bytes());
    }
}

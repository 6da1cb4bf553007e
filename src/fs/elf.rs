//! What an exec'd file is to the kernel's loaders, as far as IMA's hooks depend on it
//! (fs/binfmt_script.c: `load_script`; fs/binfmt_elf.c: `load_elf_binary`,
//! `elf_read_implies_exec`):
//!
//! - a `#!` script: the kernel opens its interpreter with `open_exec` and runs
//!   `security_bprm_check` on it again (BPRM_CHECK), mapping nothing of the script;
//! - an ELF program: mapped by the kernel (`elf_map`, MMAP_CHECK after BPRM_CHECK); its
//!   `PT_INTERP` loader is opened with `open_exec` (FILE_CHECK with MAY_EXEC) and mapped
//!   (MMAP_CHECK), but it is not the bprm file: no BPRM_CHECK.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// The kernel's limit on `PT_INTERP` (fs/binfmt_elf.c: `p_filesz > PATH_MAX`).
const PATH_MAX: u64 = 4096;
const PT_INTERP: u64 = 3;
const ET_EXEC: u64 = 2;
const ET_DYN: u64 = 3;

/// The loader the kernel picks for a file (`search_binary_handler`), as far as it matters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecFormat {
    /// `#!`: the interpreter is a new bprm file.
    Script,
    /// ELF, with its `PT_INTERP` path (without the NUL) when dynamically linked.
    Elf { interp: Option<Vec<u8>> },
    /// Anything else (binfmt_misc, or a file the exec will fail on).
    Other,
}

/// Read the headers of `file` as `load_elf_binary` does (pread only).
pub fn probe(file: &File) -> ExecFormat {
    probe_with(&|buf, offset| file.read_at(buf, offset).unwrap_or(0))
}

/// [`probe`] of a file's content in memory.
pub fn probe_bytes(data: &[u8]) -> ExecFormat {
    probe_with(&|buf, offset| {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        n
    })
}

/// `read_at(buf, offset)`: the number of bytes read (short at the end, 0 on error).
type ReadAt<'a> = dyn Fn(&mut [u8], u64) -> usize + 'a;

fn probe_with(read_at: &ReadAt<'_>) -> ExecFormat {
    let mut head = [0u8; 64];
    let n = read_at(&mut head, 0);
    if n >= 2 && head[..2] == *b"#!" {
        return ExecFormat::Script;
    }
    if n < 52 || head[..4] != *b"\x7fELF" {
        return ExecFormat::Other;
    }
    elf(read_at, &head[..n]).unwrap_or(ExecFormat::Other)
}

fn elf(read_at: &ReadAt<'_>, head: &[u8]) -> Option<ExecFormat> {
    let class64 = match head[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let little = match head[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    // An unsigned field of `width` bytes at offset `o`, in the file's byte order.
    let uint = |b: &[u8], o: usize, width: usize| -> Option<u64> {
        let bytes = b.get(o..o.checked_add(width)?)?;
        let push = |v: u64, &x: &u8| v << 8 | u64::from(x);
        Some(if little {
            bytes.iter().rev().fold(0, push)
        } else {
            bytes.iter().fold(0, push)
        })
    };
    let e_type = uint(head, 16, 2)?;
    if e_type != ET_EXEC && e_type != ET_DYN {
        return None;
    }
    // e_phoff, e_phentsize, e_phnum (Elf64_Ehdr / Elf32_Ehdr).
    let (phoff, phentsize, phnum) = if class64 {
        (uint(head, 32, 8)?, uint(head, 54, 2)?, uint(head, 56, 2)?)
    } else {
        (uint(head, 28, 4)?, uint(head, 42, 2)?, uint(head, 44, 2)?)
    };
    let (entsize, phnum) = (phentsize as usize, phnum as usize);
    let want = if class64 { 56 } else { 32 };
    // `elf_read_phdrs`: the entry size must be the ELF class's, the table at most 64 KiB.
    if entsize != want || phnum == 0 || entsize * phnum > 65536 {
        return None;
    }
    let mut table = vec![0u8; entsize * phnum];
    if read_at(&mut table, phoff) != table.len() {
        return None;
    }
    for ph in table.chunks_exact(entsize) {
        if uint(ph, 0, 4)? != PT_INTERP {
            continue;
        }
        // p_offset, p_filesz (Elf64_Phdr / Elf32_Phdr).
        let (offset, filesz) = if class64 {
            (uint(ph, 8, 8)?, uint(ph, 32, 8)?)
        } else {
            (uint(ph, 4, 4)?, uint(ph, 16, 4)?)
        };
        // `load_elf_binary`: 2 <= p_filesz <= PATH_MAX, NUL-terminated.
        if !(2..=PATH_MAX).contains(&filesz) {
            return None;
        }
        let mut path = vec![0u8; filesz as usize];
        if read_at(&mut path, offset) != path.len() || path.pop() != Some(0) {
            return None;
        }
        // `open_exec` takes it as a C string: it ends at the first NUL.
        if let Some(end) = path.iter().position(|&b| b == 0) {
            path.truncate(end);
        }
        return Some(ExecFormat::Elf { interp: Some(path) });
    }
    Some(ExecFormat::Elf { interp: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn programs_scripts_and_others() {
        let sh = File::open("/bin/sh").expect("/bin/sh");
        match probe(&sh) {
            ExecFormat::Elf { interp: Some(p) } => assert!(p.starts_with(b"/lib"), "{p:?}"),
            other => panic!("/bin/sh: {other:?}"),
        }
        let mut script = tempfile::NamedTempFile::new().expect("temp");
        script.write_all(b"#!/bin/sh\necho\n").expect("write");
        assert_eq!(probe(script.as_file()), ExecFormat::Script);
        let mut junk = tempfile::NamedTempFile::new().expect("temp");
        junk.write_all(b"\x7fELF\x02\x01garbage").expect("write");
        assert_eq!(probe(junk.as_file()), ExecFormat::Other);
    }

    /// A big-endian ELF of class 32 or 64 whose PT_INTERP names `interp`, laid out as
    /// Elf32_Ehdr/Elf64_Ehdr and one program header (uapi elf.h).
    fn big_endian_elf(class64: bool, interp: &[u8]) -> Vec<u8> {
        let (ehsize, phentsize) = if class64 { (64, 56) } else { (52, 32) };
        let interp_at = ehsize + phentsize;
        let mut f = vec![0u8; interp_at];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = if class64 { 2 } else { 1 };
        f[5] = 2; // ELFDATA2MSB
        f[6] = 1;
        f[16..18].copy_from_slice(&3u16.to_be_bytes()); // ET_DYN
        let ph = ehsize;
        let filesz = interp.len() + 1;
        if class64 {
            f[32..40].copy_from_slice(&(ehsize as u64).to_be_bytes());
            f[54..56].copy_from_slice(&(phentsize as u16).to_be_bytes());
            f[56..58].copy_from_slice(&1u16.to_be_bytes());
            f[ph..ph + 4].copy_from_slice(&3u32.to_be_bytes());
            f[ph + 8..ph + 16].copy_from_slice(&(interp_at as u64).to_be_bytes());
            f[ph + 32..ph + 40].copy_from_slice(&(filesz as u64).to_be_bytes());
        } else {
            f[28..32].copy_from_slice(&(ehsize as u32).to_be_bytes());
            f[42..44].copy_from_slice(&(phentsize as u16).to_be_bytes());
            f[44..46].copy_from_slice(&1u16.to_be_bytes());
            f[ph..ph + 4].copy_from_slice(&3u32.to_be_bytes());
            f[ph + 4..ph + 8].copy_from_slice(&(interp_at as u32).to_be_bytes());
            f[ph + 16..ph + 20].copy_from_slice(&(filesz as u32).to_be_bytes());
        }
        f.extend_from_slice(interp);
        f.push(0);
        f
    }

    #[test]
    fn big_endian_and_32_bit_headers_name_their_interpreter() {
        for class64 in [false, true] {
            let elf = big_endian_elf(class64, b"/lib/ld.so.1");
            assert_eq!(
                probe_bytes(&elf),
                ExecFormat::Elf {
                    interp: Some(b"/lib/ld.so.1".to_vec())
                },
                "class64 {class64}"
            );
        }
    }
}

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
const PT_INTERP: u32 = 3;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

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
    let u16_at = |b: &[u8], o: usize| -> Option<u16> {
        let v: [u8; 2] = b.get(o..o + 2)?.try_into().ok()?;
        Some(if little {
            u16::from_le_bytes(v)
        } else {
            u16::from_be_bytes(v)
        })
    };
    let u32_at = |b: &[u8], o: usize| -> Option<u32> {
        let v: [u8; 4] = b.get(o..o + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(v)
        } else {
            u32::from_be_bytes(v)
        })
    };
    let u64_at = |b: &[u8], o: usize| -> Option<u64> {
        let v: [u8; 8] = b.get(o..o + 8)?.try_into().ok()?;
        Some(if little {
            u64::from_le_bytes(v)
        } else {
            u64::from_be_bytes(v)
        })
    };
    let e_type = u16_at(head, 16)?;
    if e_type != ET_EXEC && e_type != ET_DYN {
        return None;
    }
    let (phoff, phentsize, phnum) = if class64 {
        (u64_at(head, 32)?, u16_at(head, 54)?, u16_at(head, 56)?)
    } else {
        (
            u64::from(u32_at(head, 28)?),
            u16_at(head, 42)?,
            u16_at(head, 44)?,
        )
    };
    let entsize = usize::from(phentsize);
    let want = if class64 { 56 } else { 32 };
    // `elf_read_phdrs`: the entry size must be the ELF class's, the table at most 64 KiB.
    if entsize != want || phnum == 0 || entsize * usize::from(phnum) > 65536 {
        return None;
    }
    let mut table = vec![0u8; entsize * usize::from(phnum)];
    if read_at(&mut table, phoff) != table.len() {
        return None;
    }
    for ph in table.chunks_exact(entsize) {
        if u32_at(ph, 0)? != PT_INTERP {
            continue;
        }
        let (offset, filesz) = if class64 {
            (u64_at(ph, 8)?, u64_at(ph, 32)?)
        } else {
            (u64::from(u32_at(ph, 4)?), u64::from(u32_at(ph, 16)?))
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
}

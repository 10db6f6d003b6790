//! Shared test helpers.
#![allow(dead_code)]

/// A minimal PE32+ with the given sections: raw data rounded up to 0x200 (so
/// SizeOfRawData > VirtualSize and the padding must not be measured).
pub fn build_uki(sections: &[(&str, &[u8])]) -> Vec<u8> {
    let n = sections.len() + 1; // plus a .text
    let opt_size = 240usize;
    let headers = 0x40 + 4 + 20 + opt_size + 40 * n;
    let soh = headers.div_ceil(0x200) * 0x200;
    let mut secs: Vec<(String, Vec<u8>)> = vec![(".text".into(), vec![0xc3; 16])];
    secs.extend(sections.iter().map(|(n, d)| (n.to_string(), d.to_vec())));
    let mut f = vec![0u8; soh];
    f[0..2].copy_from_slice(b"MZ");
    f[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    f[0x40..0x44].copy_from_slice(b"PE\0\0");
    let coff = 0x44;
    f[coff..coff + 2].copy_from_slice(&0x8664u16.to_le_bytes());
    f[coff + 2..coff + 4].copy_from_slice(&(n as u16).to_le_bytes());
    f[coff + 16..coff + 18].copy_from_slice(&(opt_size as u16).to_le_bytes());
    let opt = coff + 20;
    f[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
    f[opt + 32..opt + 36].copy_from_slice(&0x1000u32.to_le_bytes()); // SectionAlignment
    f[opt + 36..opt + 40].copy_from_slice(&0x200u32.to_le_bytes()); // FileAlignment
    f[opt + 60..opt + 64].copy_from_slice(&(soh as u32).to_le_bytes());
    f[opt + 64..opt + 68].copy_from_slice(&0xdeadbeefu32.to_le_bytes()); // CheckSum
    f[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
    let mut va = 0x1000u32;
    for (i, (name, data)) in secs.iter().enumerate() {
        let raw = f.len();
        let raw_size = data.len().div_ceil(0x200) * 0x200;
        let at = opt + opt_size + 40 * i;
        f[at..at + name.len()].copy_from_slice(name.as_bytes());
        f[at + 8..at + 12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        f[at + 12..at + 16].copy_from_slice(&va.to_le_bytes());
        f[at + 16..at + 20].copy_from_slice(&(raw_size as u32).to_le_bytes());
        f[at + 20..at + 24].copy_from_slice(&(raw as u32).to_le_bytes());
        f.extend_from_slice(data);
        f.resize(raw + raw_size, 0xee);
        va += (data.len() as u32).div_ceil(0x1000) * 0x1000;
    }
    f
}

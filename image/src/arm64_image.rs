//! Linux arm64 image header checks (Linux `Documentation/arch/arm64/booting.rst`, §4).

use crate::{ImageError, ImageInfo};

const MAGIC_OFFSET: usize = 56;
const MAGIC: &[u8; 4] = b"ARM\x64";

pub fn inspect(b: &[u8]) -> Result<ImageInfo, ImageError> {
    let header = b.get(..64).ok_or(ImageError::Truncated("arm64 image"))?;
    if &header[MAGIC_OFFSET..MAGIC_OFFSET + 4] != MAGIC {
        return Err(ImageError::NotArm64Image);
    }
    let word = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or([0; 8]));
    let text_offset = word(8);
    let image_bytes = word(16);
    let file_bytes = b.len() as u64;
    // image_size covers .bss too, so it can exceed the file, never fall short of it.
    if image_bytes < file_bytes {
        return Err(ImageError::SizeMismatch {
            header: image_bytes,
            file: file_bytes,
        });
    }
    Ok(ImageInfo::Arm64 {
        text_offset,
        image_bytes,
        file_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text_offset: u64, size: u64) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[8..16].copy_from_slice(&text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&size.to_le_bytes());
        h[56..60].copy_from_slice(MAGIC);
        h
    }

    #[test]
    fn accepts_a_header_that_covers_the_file() {
        let info = inspect(&header(0x80000, 4096)).unwrap();
        assert_eq!(
            info,
            ImageInfo::Arm64 {
                text_offset: 0x80000,
                image_bytes: 4096,
                file_bytes: 64
            }
        );
    }

    #[test]
    fn rejects_missing_magic_short_files_and_undersized_headers() {
        assert_eq!(inspect(&[0; 64]), Err(ImageError::NotArm64Image));
        assert_eq!(inspect(&[0; 10]), Err(ImageError::Truncated("arm64 image")));
        assert_eq!(
            inspect(&header(0x80000, 10)),
            Err(ImageError::SizeMismatch {
                header: 10,
                file: 64
            })
        );
    }
}

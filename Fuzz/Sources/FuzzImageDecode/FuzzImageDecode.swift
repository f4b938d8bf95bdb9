import Foundation
import Imaging

/// PNG/JPEG bytes through libpng/libjpeg-turbo and the C shims. A small pixel limit
/// keeps each input cheap; a refusal (`ImagingError`) is a clean answer.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let data = start.map { Data(bytes: $0, count: count) } ?? Data()
    for options in [DecodeOptions(maxPixels: 1 << 16), .kerasLike(maxPixels: 1 << 16),
                    DecodeOptions(maxPixels: 1 << 16, layout: .rgba, applyEXIFOrientation: true)] {
        if let (image, info) = try? decodeImageWithInfo(data, options: options) {
            precondition(image.width * image.height <= 1 << 16, "decoded past the pixel limit")
            precondition(info.storedWidth * info.storedHeight <= 1 << 16)
        }
    }
    return 0
}

import Foundation
import Testing

@testable import Server

#if canImport(Glibc)
    import Glibc
#endif

/// The form parser's cost, measured in CPU time of the calling thread (the parse runs on
/// it, synchronously), so other tests loading the machine do not change the figure.
@Suite struct MultipartParseTests {
    static func threadCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    @Test func aHundredThousandPartsParseInOneLinearPass() throws {
        let boundary = "xyz0123456789"
        let image = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + [UInt8](repeating: 7, count: 1000))
        let body = UploadHardeningTests.form(boundary: boundary, parts: 100_000, image: image)
        let start = Self.threadCPUSeconds()
        // No part limit here: the whole form is walked to the image at its end.
        let found = try UploadedImage.multipartField("image", in: body, boundary: boundary, maxParts: 1_000_000)
        let cpu = Self.threadCPUSeconds() - start
        #expect(found == image)
        #expect(cpu < 1, "100k parts took \(cpu) s of CPU")
    }

    @Test func malformedFormsAre400NotCrashes() throws {
        let cases: [(String, String)] = [
            ("no boundary at all", "b"),
            ("--b\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nunterminated", "b"),
            ("--b\r\nContent-Disposition: form-data; name=\"image\"", "b"),
            ("--b", "b"),
            ("--bX", "b"),
            ("", "b"),
            ("--b\r\n\r\n\r\n--b--", String(repeating: "b", count: 71)),
        ]
        for (text, boundary) in cases {
            #expect(throws: APIError.self, "\(text.debugDescription)") {
                _ = try UploadedImage.multipartField("image", in: Data(text.utf8), boundary: boundary, maxParts: 64)
            }
        }
        // A part without headers, a preamble, transport padding and an epilogue are all fine.
        let ok =
            "preamble\r\n--b\r\n\r\nheaderless\r\n--b  \r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nIMG\r\n--b--\r\nepilogue"
        #expect(try UploadedImage.multipartField("image", in: Data(ok.utf8), boundary: "b", maxParts: 64) == Data("IMG".utf8))
        // The closing delimiter ends the form: no field is nil (the route's 400 names the field).
        #expect(try UploadedImage.multipartField("image", in: Data("--b\r\n\r\nx\r\n--b--".utf8), boundary: "b", maxParts: 64) == nil)
    }
}

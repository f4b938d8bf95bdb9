import Testing

@testable import Engine

@Test func samePaddingIsAsymmetricLikeTensorFlow() {
    // 224 input, 3x3 kernel, stride 2: TF pads 0 before and 1 after.
    let p = Padding.same.outputSizeAndPadding(input: 224, kernel: 3, stride: 2)
    #expect(p.size == 112 && p.before == 0 && p.after == 1)
    let v = Padding.valid.outputSizeAndPadding(input: 150, kernel: 3, stride: 1)
    #expect(v.size == 148)
}

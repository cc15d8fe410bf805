package codec

// Exports for the black-box tests in package codec_test.
var (
	EqualValue   = equalValue
	RandomValue  = randomValue
	RandomValues = randomValues
)

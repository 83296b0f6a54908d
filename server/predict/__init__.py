"""Conversion-probability targeting (`predict.<goal>`): the feature encoding, the scorer (the twin
of sdk_js/src/predict.js, held together by spec/08-predict.json), training and model reports."""

package featurestream.genmodel;

import hex.genmodel.easy.EasyPredictModelWrapper;
import hex.genmodel.easy.RowData;
import hex.genmodel.easy.exception.PredictException;
import hex.genmodel.easy.prediction.BinomialModelPrediction;
import hex.genmodel.easy.prediction.MultinomialModelPrediction;
import hex.genmodel.easy.prediction.RegressionModelPrediction;

/**
 * Scores a batch of rows in one call from Python (models/mojo_scorer.py).
 *
 * Crossing from Python into Java costs about a microsecond per call, so the
 * per-row path (a RowData built by one put() per column from Python) spent
 * most of its time at the border. Here Python hands over the whole batch as
 * flat arrays and this class builds each row's RowData and calls the same
 * EasyPredictModelWrapper method the per-row path called: the values are
 * genmodel's own, unchanged.
 *
 * Layout (row-major, nRows rows):
 *   numeric[r * nNumeric + c]       the number; NaN = missing (not put)
 *   textCells[i] / texts[i]         ascending flat indices into numeric whose value is a
 *                                   string, handed to genmodel unparsed (it trims and
 *                                   parses, unparseable = NA)
 *   categorical[r * nCategorical + c] index into levels[c]; negative = missing (not put)
 * Result: nRows * width doubles; Binomial/Multinomial: labelIndex, then the class
 * probabilities; Regression: the value.
 *
 * Immutable; EasyPredictModelWrapper is thread-safe, so one instance serves
 * every thread.
 */
public final class BatchScorer {
    public static final int BINOMIAL = 0;
    public static final int MULTINOMIAL = 1;
    public static final int REGRESSION = 2;

    private final EasyPredictModelWrapper wrapper;
    private final String[] numericNames;
    private final String[] categoricalNames;
    private final String[][] levels;
    private final int kind;
    private final int width;

    public BatchScorer(EasyPredictModelWrapper wrapper, String[] numericNames, String[] categoricalNames,
                       String[][] levels, int kind, int nClasses) {
        if (categoricalNames.length != levels.length) {
            throw new IllegalArgumentException("one level array per categorical column");
        }
        if (kind != BINOMIAL && kind != MULTINOMIAL && kind != REGRESSION) {
            throw new IllegalArgumentException("unknown model kind " + kind);
        }
        this.wrapper = wrapper;
        this.numericNames = numericNames.clone();
        this.categoricalNames = categoricalNames.clone();
        this.levels = levels.clone();
        this.kind = kind;
        this.width = kind == REGRESSION ? 1 : 1 + nClasses;
    }

    public int width() {
        return width;
    }

    public double[] score(int nRows, double[] numeric, int[] textCells, String[] texts, int[] categorical)
            throws PredictException {
        int nNumeric = numericNames.length;
        int nCategorical = categoricalNames.length;
        if (numeric.length != nRows * nNumeric || categorical.length != nRows * nCategorical
                || textCells.length != texts.length) {
            throw new IllegalArgumentException("batch arrays do not match " + nRows + " rows");
        }
        double[] out = new double[nRows * width];
        int text = 0;
        for (int r = 0; r < nRows; r++) {
            RowData row = new RowData();
            for (int c = 0; c < nNumeric; c++) {
                int cell = r * nNumeric + c;
                if (text < textCells.length && textCells[text] == cell) {
                    row.put(numericNames[c], texts[text++]);
                    continue;
                }
                double v = numeric[cell];
                if (!Double.isNaN(v)) {
                    row.put(numericNames[c], Double.valueOf(v));
                }
            }
            for (int c = 0; c < nCategorical; c++) {
                int code = categorical[r * nCategorical + c];
                if (code >= 0) {
                    row.put(categoricalNames[c], levels[c][code]);
                }
            }
            try {
                predictInto(row, out, r * width);
            } catch (PredictException e) {
                throw new PredictException("row " + r + " of the batch: " + e.getMessage(), e);
            }
        }
        return out;
    }

    private void predictInto(RowData row, double[] out, int at) throws PredictException {
        switch (kind) {
            case BINOMIAL: {
                BinomialModelPrediction p = wrapper.predictBinomial(row);
                out[at] = p.labelIndex;
                System.arraycopy(p.classProbabilities, 0, out, at + 1, width - 1);
                return;
            }
            case MULTINOMIAL: {
                MultinomialModelPrediction p = wrapper.predictMultinomial(row);
                out[at] = p.labelIndex;
                System.arraycopy(p.classProbabilities, 0, out, at + 1, width - 1);
                return;
            }
            default: {
                RegressionModelPrediction p = wrapper.predictRegression(row);
                out[at] = p.value;
            }
        }
    }
}

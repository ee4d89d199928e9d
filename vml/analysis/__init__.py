"""The analysis layer: store records in, the chapters' tables out. One module per chapter
(`tables` for Tables 1-2, `decisive` for the decisive test, `reactivity`, `seed_groups`, `remedies`, `ablations`, `seeds`), the
shared loading and comparison (`common`), the reader's views (`display`) and the headline.

Loading and aggregation for the book's results chapters (4-10): store records in, tidy tables out.

Every function takes a `profile` (default: `vml.book.BOOK_PROFILE`) and an optional store `root`
and works on a *partial* store: settings with too few runs come back with NaN statistics and a
verdict that says so, never an error. Accuracies are fractions in the store; every table here
reports them in percent (SDs in percentage points), like the paper. Randomised steps (bootstrap,
seed-group draws, resampled ensembles) take an explicit `seed`.

The CI behind each verdict of the results chapters is the exact F interval for the SD ratio (normal theory);
the percentile bootstrap is reported beside it. The F interval is exact for normal accuracies but too
narrow when a few seeds lie far out (heavier tails), where the bootstrap keeps its coverage better
(`decisive.interval_coverage`, chapter "The decisive test"): where the two verdicts differ, the tables say so.
"""

"""The evaluate pipeline: answers per variant, judge and offline scores, report, champion."""

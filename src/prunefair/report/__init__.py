"""Figures, tables and the report, built from a study's store alone."""

from prunefair.report.figures import figure_group_accuracy, group_accuracy_curves, write_figures
from prunefair.report.html import write_report
from prunefair.report.terminal import group_table, print_group_table

__all__ = ["figure_group_accuracy", "group_accuracy_curves", "group_table", "print_group_table", "write_figures",
           "write_report"]

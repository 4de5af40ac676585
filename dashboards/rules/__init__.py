"""The live board's arithmetic: its period, the spans it derives live, rates and the summing of figures. Pure."""

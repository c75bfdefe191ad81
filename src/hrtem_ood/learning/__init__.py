"""The U-Net and its training: the model (``model``), the training loop (``training``), evaluation and losses
(``evaluation``), segmenting a user's micrographs (``predict``) and the exported model with its card (``export``).
Never imports abTEM."""

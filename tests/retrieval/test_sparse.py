from retrieval.sparse import Bm25Encoder


def test_analysis_stems_drops_stop_words_and_keeps_form_names_and_numbers():
    tokens = Bm25Encoder().analyse(
        "How do employers pay Statutory Sick Pay? Form SSP1, Class 4 NICs"
    )
    assert "ssp1" in tokens
    assert "4" in tokens
    assert "employ" in tokens  # stemmed
    assert "statutori" in tokens
    assert "how" not in tokens and "do" not in tokens  # stop words


def test_query_and_document_share_token_ids():
    enc = Bm25Encoder()
    doc = enc.encode_document("Employers must pay Statutory Sick Pay")
    query = enc.encode_query("employer paying sick pay")
    assert set(query.indices) <= set(doc.indices)
    assert query.values == [1.0] * len(query.indices)


def test_document_weights_saturate_with_term_frequency_and_length():
    enc = Bm25Encoder(avg_doc_len=10)
    once = enc.encode_document("pension")
    many = enc.encode_document("pension " * 20)
    long_doc = enc.encode_document("pension " + "filler words here " * 30)
    pid = enc.token_id(enc.analyse("pension")[0])
    w = {
        name: dict(zip(v.indices, v.values, strict=True))[pid]
        for name, v in [("once", once), ("many", many), ("long", long_doc)]
    }
    assert w["once"] < w["many"] < enc.k1 + 1  # grows but saturates below k1 + 1
    assert w["long"] < w["once"]  # longer documents weigh a match less


def test_token_ids_are_stable_across_instances():
    assert Bm25Encoder().encode_query("maternity pay") == Bm25Encoder().encode_query(
        "maternity pay"
    )
